//! What the `admin` command line serves besides its commands: the local
//! stand-in of the exchange's account facts endpoint, which the tests run
//! in-process too.

pub mod stand_in;

//! The contact migration service's library: the domain rules, the DynamoDB
//! store, code delivery, the TOTP vault, the account facts port, the HTTP edge, and the steps that
//! join them. Each Lambda binary hands the endpoints it serves to
//! [`lambda::run`].

pub mod app;
pub mod aws;
pub mod config;
pub mod domain;
pub mod facts;
pub mod http;
pub mod lambda;
pub mod notify;
pub mod relay;
pub mod secrets;
pub mod steps;
pub mod store;
pub mod vault;

pub use app::App;

//! Sizes of a deployment package: the zip, and what it holds unzipped (read
//! from the zip's central directory, so no unzip tool is needed); and the
//! dynamic relocations of a binary, which the loader applies at each start.

use std::path::Path;

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?).into())
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?).into())
}

/// (zip size, sum of the entries' uncompressed sizes), in bytes.
pub fn zip_sizes(path: &Path) -> Result<(u64, u64), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let broken = || format!("{}: not a zip archive", path.display());
    // End of central directory: signature, then the directory's size and offset.
    let eocd = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(broken)?;
    let entries = u16_at(&bytes, eocd + 10).ok_or_else(broken)?;
    let mut at = u32_at(&bytes, eocd + 16).ok_or_else(broken)? as usize;
    let mut unzipped = 0;
    for _ in 0..entries {
        if bytes.get(at..at + 4) != Some(&[0x50, 0x4b, 0x01, 0x02][..]) {
            return Err(broken());
        }
        unzipped += u32_at(&bytes, at + 24).ok_or_else(broken)?;
        let variable = u16_at(&bytes, at + 28).ok_or_else(broken)?
            + u16_at(&bytes, at + 30).ok_or_else(broken)?
            + u16_at(&bytes, at + 32).ok_or_else(broken)?;
        at += 46 + variable as usize;
    }
    Ok((bytes.len() as u64, unzipped))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The dynamic relocations of a little-endian ELF64 executable: the entries
/// of its `SHT_RELA` and `SHT_RELR` sections (a RELR word can stand for many
/// relocations; none of these binaries has one).
pub fn relocations(path: &Path) -> Result<u64, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let broken = || format!("{}: not a little-endian ELF64 file", path.display());
    if b.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(broken());
    }
    let shoff = u64_at(&b, 0x28).ok_or_else(broken)? as usize;
    let shentsize = u16_at(&b, 0x3a).ok_or_else(broken)? as usize;
    let shnum = u16_at(&b, 0x3c).ok_or_else(broken)? as usize;
    let mut count = 0;
    for i in 0..shnum {
        let at = shoff + i * shentsize;
        let kind = u32_at(&b, at + 4).ok_or_else(broken)?;
        let size = u64_at(&b, at + 0x20).ok_or_else(broken)?;
        let entsize = u64_at(&b, at + 0x38).ok_or_else(broken)?;
        const SHT_RELA: u64 = 4;
        const SHT_RELR: u64 = 19;
        if (kind == SHT_RELA || kind == SHT_RELR) && entsize > 0 {
            count += size / entsize;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocations_of_this_test_binary_are_counted() {
        let own = std::env::current_exe().unwrap();
        // A position-independent executable: its vtables and string
        // references are relocated at start.
        assert!(relocations(&own).unwrap() > 100);
        assert!(relocations(Path::new("Cargo.toml")).is_err());
    }
}

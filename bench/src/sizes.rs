//! Sizes of a deployment package: the zip, and what it holds unzipped (read
//! from the zip's central directory, so no unzip tool is needed).

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

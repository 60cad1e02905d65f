//! Big-endian field access. Callers have already checked the length
//! (`check_len`), so these index directly; they exist so that every view
//! reads fields the same way and without `unwrap`.

use core::ops::Range;

#[inline]
pub(crate) fn get_u16(data: &[u8], r: Range<usize>) -> u16 {
    let b = &data[r];
    u16::from_be_bytes([b[0], b[1]])
}

#[inline]
pub(crate) fn set_u16(data: &mut [u8], r: Range<usize>, v: u16) {
    data[r].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn get_u32(data: &[u8], r: Range<usize>) -> u32 {
    let b = &data[r];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[inline]
pub(crate) fn set_u32(data: &mut [u8], r: Range<usize>, v: u32) {
    data[r].copy_from_slice(&v.to_be_bytes());
}

/// A 24-bit big-endian field (VXLAN VNI and reserved word).
#[inline]
pub(crate) fn get_u24(data: &[u8], r: Range<usize>) -> u32 {
    let b = &data[r];
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Writes the low 24 bits of `v`.
#[inline]
pub(crate) fn set_u24(data: &mut [u8], r: Range<usize>, v: u32) {
    let b = v.to_be_bytes();
    data[r].copy_from_slice(&b[1..4]);
}

/// Copies a fixed-size field out (addresses).
#[inline]
pub(crate) fn get_array<const N: usize>(data: &[u8], start: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&data[start..start + N]);
    out
}

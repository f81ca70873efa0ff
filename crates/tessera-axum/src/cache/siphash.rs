//! SipHash with a 128-bit output (Aumasson and Bernstein's reference `siphash` with
//! `outlen = 16`), for the cache's names of presented tokens ([`Presented`](super::Presented)).
//!
//! The standard library keeps its SipHash private and gives 64 bits per hash: a 128-bit name used
//! to take two of them, each reading the token through `Hasher::write`'s buffering. This reads the
//! token once, eight bytes at a time, and finalises twice (the reference's 128-bit mode): for a
//! 64-character token, about a third of the work.
//!
//! The rounds are parameters: the names use SipHash-1-3, the rounds of the standard library's
//! hasher that made the names before (and of rustc's own 128-bit SipHasher); the construction is
//! checked with the reference's SipHash-2-4 and its published test vectors.

/// The SipHash-1-3 128-bit tag of `data` under the key `(k0, k1)`: what names a presented token.
pub(crate) fn siphash13_128(key: (u64, u64), data: &[u8]) -> (u64, u64) {
    siphash128::<1, 3>(key, data)
}

/// The SipHash-`C`-`D` 128-bit tag of `data` under the key `(k0, k1)`, as two little-endian words
/// (the reference's 16 output bytes are `out.0.to_le_bytes()` then `out.1.to_le_bytes()`).
fn siphash128<const C: usize, const D: usize>(key: (u64, u64), data: &[u8]) -> (u64, u64) {
    let (k0, k1) = key;
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        compress::<C>(&mut v, u64::from_le_bytes(bytes));
    }
    // The last block: the remaining bytes, and the length's low byte on top.
    let rest = words.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    compress::<C>(&mut v, u64::from_le_bytes(last));

    v[2] ^= 0xee;
    for _ in 0..D {
        round(&mut v);
    }
    let first = v[0] ^ v[1] ^ v[2] ^ v[3];
    v[1] ^= 0xdd;
    for _ in 0..D {
        round(&mut v);
    }
    (first, v[0] ^ v[1] ^ v[2] ^ v[3])
}

/// One message word: `C` rounds.
#[inline(always)]
fn compress<const C: usize>(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    for _ in 0..C {
        round(v);
    }
    v[0] ^= m;
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference implementation's `vectors_sip128`: key `00 01 … 0f`, message `00 01 … (n-1)`.
    #[test]
    fn the_reference_vectors() {
        let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let cases: [(usize, [u8; 16]); 5] = [
            (0, [0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93]),
            (1, [0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45]),
            (2, [0x81, 0x77, 0x22, 0x8d, 0xa4, 0xa4, 0x5d, 0xc7, 0xfc, 0xa3, 0x8b, 0xde, 0xf6, 0x0a, 0xff, 0xe4]),
            (3, [0x9c, 0x70, 0xb6, 0x0c, 0x52, 0x67, 0xa9, 0x4e, 0x5f, 0x33, 0xb6, 0xb0, 0x29, 0x85, 0xed, 0x51]),
            (15, [0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3, 0xd9]),
        ];
        let message: Vec<u8> = (0..64).collect();
        for (n, want) in cases {
            let (a, b) = siphash128::<2, 4>(key, &message[..n]);
            let mut got = [0u8; 16];
            got[..8].copy_from_slice(&a.to_le_bytes());
            got[8..].copy_from_slice(&b.to_le_bytes());
            assert_eq!(got, want, "message of {n} bytes");
        }
    }

    #[test]
    fn every_byte_and_the_length_count() {
        let key = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let token = b"tsr_0aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVw";
        let name = siphash13_128(key, token);
        assert_eq!(name, siphash13_128(key, token));
        for i in 0..token.len() {
            let mut other = *token;
            other[i] ^= 1;
            assert!(siphash13_128(key, &other) != name, "byte {i}");
        }
        assert!(siphash13_128(key, &token[..63]) != name);
        assert!(siphash13_128(key, &[token.as_slice(), &[0]].concat()) != name, "a trailing zero byte");
        assert!(siphash13_128((key.0, key.1 ^ 1), token) != name, "another key");
    }
}

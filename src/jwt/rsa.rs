//! RSASSA-PKCS1-v1_5 verification (RFC 8017 8.2.2) for RS256, RS384 and RS512.
//!
//! The public-key operation for e = 65537 (or 3) is a handful of Montgomery
//! multiplications modulo n; the result is compared, whole, with the EMSA-PKCS1-v1_5
//! encoding of the digest (RFC 8017 9.2): `00 01 FF..FF 00 DigestInfo(hash)`. The block
//! is never parsed, so there is no padding or ASN.1 parser to get wrong.
//!
//! Limbs are 32 bits because wasm32 has a native 32x32->64 multiply (`i64.mul`) but no
//! 64x64->128 one: 64-bit limbs would call a software `__multi3` for every product.
//! Everything here is public (key, message, signature), so nothing needs to be constant
//! time. What can be computed once per key (-n^-1 mod 2^32, R^2 mod n) is computed when
//! the key is parsed.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// Moduli longer than this are refused (the JWKS parser already stops at 4096 bits).
pub const MAX_MODULUS_BITS: usize = 8192;
/// Moduli shorter than this cannot hold a SHA-512 encoding with 8 bytes of padding anyway.
pub const MIN_MODULUS_BITS: usize = 512;

/// The digest of an RS* algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// DER of `DigestInfo` up to the digest itself, with the NULL parameters every JWS
/// signer writes (RFC 8017 9.2 Note 1). The variant without NULL is not accepted.
const PREFIX_SHA256: [u8; 19] = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
const PREFIX_SHA384: [u8; 19] = [0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30];
const PREFIX_SHA512: [u8; 19] = [0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40];

impl Hash {
    fn digest_info(self, message: &[u8]) -> (&'static [u8], Vec<u8>) {
        match self {
            Hash::Sha256 => (&PREFIX_SHA256, Sha256::digest(message).to_vec()),
            Hash::Sha384 => (&PREFIX_SHA384, Sha384::digest(message).to_vec()),
            Hash::Sha512 => (&PREFIX_SHA512, Sha512::digest(message).to_vec()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exponent {
    /// 65537 = 2^16 + 1.
    F4,
    Three,
}

/// An RSA public key ready for verification.
#[derive(Clone)]
pub struct RsaPublicKey {
    /// The modulus, little-endian 32-bit limbs; L = ceil(k / 4) of them, R = 2^(32 L).
    n: Vec<u32>,
    /// -n^-1 mod 2^32.
    n0inv: u32,
    /// R^2 mod n: one Montgomery multiplication by it enters Montgomery form.
    r2: Vec<u32>,
    e: Exponent,
    /// k, the modulus length in bytes: a signature is exactly this long.
    len: usize,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPublicKey").field("bytes", &self.len).field("e", &self.e).finish()
    }
}

impl RsaPublicKey {
    /// The key from big-endian `n` and `e` (leading zero bytes allowed). `None` unless n
    /// is odd (every RSA modulus is) and 512 to 8192 bits long, and e is 65537 or 3.
    pub fn new(n: &[u8], e: &[u8]) -> Option<RsaPublicKey> {
        let n = strip_zeros(n);
        let e = match strip_zeros(e) {
            [0x01, 0x00, 0x01] => Exponent::F4,
            [0x03] => Exponent::Three,
            _ => return None,
        };
        let len = n.len();
        let bits = len.checked_mul(8)?.checked_sub(n.first()?.leading_zeros() as usize)?;
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return None;
        }
        let limbs = len.div_ceil(4);
        let n = limbs_from_be(n, limbs)?;
        let n0 = *n.first()?;
        if n0 & 1 == 0 {
            return None;
        }
        let mut key = RsaPublicKey { n, n0inv: neg_inverse(n0), r2: Vec::new(), e, len };
        key.r2 = key.r_squared(bits)?;
        Some(key)
    }

    /// k: the modulus length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// RSASSA-PKCS1-V1_5-VERIFY (RFC 8017 8.2.2): true only if `signature` is exactly k
    /// bytes, its integer is below n, and s^e mod n is exactly the encoding of `message`'s
    /// digest.
    pub fn verify(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        // 1. Length check.
        if signature.len() != self.len {
            return false;
        }
        let limbs = self.n.len();
        // 2a. OS2IP; 2b. RSAVP1 refuses a representative out of [0, n-1].
        let Some(s) = limbs_from_be(signature, limbs) else { return false };
        if !less_than(&s, &self.n) {
            return false;
        }
        // 2b. m = s^e mod n; 3. EMSA-PKCS1-v1_5 encoding of the message, as limbs.
        let m = self.public_op(&s);
        let Some(expected) = encode(hash, message, self.len).and_then(|em| limbs_from_be(&em, limbs)) else {
            return false;
        };
        // 4. The whole block, compared exactly.
        m == expected
    }

    /// s^e mod n, fully reduced, for s < n.
    fn public_op(&self, s: &[u32]) -> Vec<u32> {
        let limbs = self.n.len();
        let mut x = vec![0u32; limbs];
        let mut y = vec![0u32; limbs];
        // x = s R mod n (Montgomery form of s).
        self.mont_mul(s, &self.r2, &mut x);
        let squarings = match self.e {
            Exponent::F4 => 16,
            Exponent::Three => 1,
        };
        let mut wide = vec![0u32; limbs.saturating_mul(2)];
        for _ in 0..squarings {
            self.mont_sqr(&x, &mut wide, &mut y);
            std::mem::swap(&mut x, &mut y);
        }
        // x = s^(e-1) R; one multiplication by plain s leaves Montgomery form: s^e.
        self.mont_mul(&x, s, &mut y);
        y
    }

    /// out = a b R^-1 mod n, for a, b < n (L limbs each), fully reduced. Interleaved
    /// (FIOS-style) Montgomery multiplication: each pass adds a * b_i and m * n and
    /// shifts one limb down, keeping the running value below 2n.
    fn mont_mul(&self, a: &[u32], b: &[u32], out: &mut [u32]) {
        out.fill(0);
        let (Some((&a0, a_rest)), Some((&n0, n_rest))) = (a.split_first(), self.n.split_first()) else {
            return;
        };
        let (a0, n0) = (u64::from(a0), u64::from(n0));
        // The limb above `out` (0 or 1).
        let mut hi: u64 = 0;
        for &bi in b {
            let bi = u64::from(bi);
            let Some((t0, t_rest)) = out.split_first_mut() else { return };
            // Every sum below is at most (2^32-1) + (2^32-1)^2 + (2^32-1) = 2^64-1: no overflow.
            let s = u64::from(*t0).wrapping_add(a0.wrapping_mul(bi));
            let m = u64::from(low(s).wrapping_mul(self.n0inv));
            let r = u64::from(low(s)).wrapping_add(m.wrapping_mul(n0));
            let mut c1 = s >> 32;
            let mut c2 = r >> 32;
            let mut prev = t0;
            for ((tj, &aj), &nj) in t_rest.iter_mut().zip(a_rest).zip(n_rest) {
                let s = u64::from(*tj).wrapping_add(u64::from(aj).wrapping_mul(bi)).wrapping_add(c1);
                c1 = s >> 32;
                let r = u64::from(low(s)).wrapping_add(m.wrapping_mul(u64::from(nj))).wrapping_add(c2);
                c2 = r >> 32;
                *prev = low(r);
                prev = tj;
            }
            let top = hi.wrapping_add(c1).wrapping_add(c2);
            *prev = low(top);
            hi = top >> 32;
        }
        if hi != 0 || !less_than(out, &self.n) {
            sub_in_place(out, &self.n);
        }
    }

    /// out = a^2 R^-1 mod n, for a < n, fully reduced: the square with each cross product
    /// computed once (L^2/2 multiplications), then Montgomery reduction (L^2), against
    /// 2 L^2 for `mont_mul(a, a)`. `wide` is scratch space of 2 L limbs.
    fn mont_sqr(&self, a: &[u32], wide: &mut [u32], out: &mut [u32]) {
        let limbs = self.n.len();
        wide.fill(0);
        // Cross products a_i a_j, i < j, at limb i + j; row i's carry lands on limb i + L,
        // which no earlier row has written.
        for (i, &ai) in a.iter().enumerate() {
            let (Some(rest), Some(row)) = (a.get(i.saturating_add(1)..), wide.get_mut(i.saturating_mul(2).saturating_add(1)..)) else {
                break;
            };
            let Some((body, tail)) = row.split_at_mut_checked(rest.len()) else { break };
            let ai = u64::from(ai);
            let mut c = 0u64;
            for (tj, &aj) in body.iter_mut().zip(rest) {
                let s = u64::from(*tj).wrapping_add(ai.wrapping_mul(u64::from(aj))).wrapping_add(c);
                *tj = low(s);
                c = s >> 32;
            }
            if let Some(t) = tail.first_mut() {
                *t = low(c);
            }
        }
        // Doubled, plus the squares a_i^2 at limb 2i.
        let mut shifted = 0u32;
        let mut c = 0u64;
        for (pair, &ai) in wide.chunks_exact_mut(2).zip(a) {
            let [lo, hi] = pair else { break };
            let sq = u64::from(ai).wrapping_mul(u64::from(ai));
            let lo2 = lo.wrapping_shl(1) | shifted;
            let hi2 = hi.wrapping_shl(1) | lo.wrapping_shr(31);
            shifted = hi.wrapping_shr(31);
            let s = u64::from(lo2).wrapping_add(u64::from(low(sq))).wrapping_add(c);
            *lo = low(s);
            let s = u64::from(hi2).wrapping_add(sq >> 32).wrapping_add(s >> 32);
            *hi = low(s);
            c = s >> 32;
        }
        // Montgomery reduction, one limb per row; `top` carries into the next row's limb L.
        let mut top = 0u64;
        for i in 0..limbs {
            let Some((body, tail)) = wide.get_mut(i..).and_then(|w| w.split_at_mut_checked(limbs)) else { break };
            let Some(&w0) = body.first() else { break };
            let m = u64::from(w0.wrapping_mul(self.n0inv));
            let mut c = 0u64;
            for (tj, &nj) in body.iter_mut().zip(&self.n) {
                let s = u64::from(*tj).wrapping_add(m.wrapping_mul(u64::from(nj))).wrapping_add(c);
                *tj = low(s);
                c = s >> 32;
            }
            if let Some(t) = tail.first_mut() {
                let s = u64::from(*t).wrapping_add(c).wrapping_add(top);
                *t = low(s);
                top = s >> 32;
            }
        }
        for (o, &w) in out.iter_mut().zip(wide.get(limbs..).unwrap_or_default()) {
            *o = w;
        }
        if top != 0 || !less_than(out, &self.n) {
            sub_in_place(out, &self.n);
        }
    }

    /// R^2 mod n: 2^(bits-1) < n doubled up to R mod n (the Montgomery form of 1), then
    /// raised to 2^(32 L) by square-and-double in Montgomery form, which gives the
    /// Montgomery form of R, i.e. R^2 mod n.
    fn r_squared(&self, bits: usize) -> Option<Vec<u32>> {
        let limbs = self.n.len();
        let top = bits.checked_sub(1)?;
        let mut v = vec![0u32; limbs];
        *v.get_mut(top.checked_div(32)?)? = 1u32.checked_shl(u32::try_from(top.checked_rem(32)?).ok()?)?;
        let r_bits = limbs.checked_mul(32)?;
        for _ in top..r_bits {
            double_mod(&mut v, &self.n);
        }
        let mut acc = v;
        let mut tmp = vec![0u32; limbs];
        let width = usize::BITS.checked_sub(r_bits.leading_zeros())?;
        for bit in (0..width).rev() {
            self.mont_mul(&acc, &acc, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if r_bits.checked_shr(bit)? & 1 == 1 {
                double_mod(&mut acc, &self.n);
            }
        }
        Some(acc)
    }
}

/// The EMSA-PKCS1-v1_5 encoding of `message` for a k-byte modulus (RFC 8017 9.2):
/// `00 01 PS 00 T` with PS at least 8 bytes of FF. `None` if k is too short.
fn encode(hash: Hash, message: &[u8], k: usize) -> Option<Vec<u8>> {
    let (prefix, digest) = hash.digest_info(message);
    let t_len = prefix.len().checked_add(digest.len())?;
    let ps_len = k.checked_sub(t_len)?.checked_sub(3)?;
    if ps_len < 8 {
        return None;
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.extend(std::iter::repeat_n(0xff, ps_len));
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(&digest);
    Some(em)
}

fn low(x: u64) -> u32 {
    x as u32
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

/// Big-endian bytes to `limbs` little-endian 32-bit limbs; `None` if they do not fit.
fn limbs_from_be(bytes: &[u8], limbs: usize) -> Option<Vec<u32>> {
    if bytes.len().div_ceil(4) > limbs {
        return None;
    }
    let mut out = vec![0u32; limbs];
    for (limb, chunk) in out.iter_mut().zip(bytes.rchunks(4)) {
        *limb = chunk.iter().fold(0u32, |acc, b| acc.wrapping_shl(8) | u32::from(*b));
    }
    Some(out)
}

/// a < b, for equally long little-endian limb vectors.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// a -= b (mod 2^(32 L)); returns the borrow.
fn sub_in_place(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u32::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
    borrow
}

/// v = 2 v mod n, for v < n.
fn double_mod(v: &mut [u32], n: &[u32]) {
    let mut carry = 0u32;
    for x in v.iter_mut() {
        let next = x.wrapping_shr(31);
        *x = x.wrapping_shl(1) | carry;
        carry = next;
    }
    if carry != 0 || !less_than(v, n) {
        sub_in_place(v, n);
    }
}

/// -x^-1 mod 2^32 for odd x, by Newton's iteration (each step doubles the correct bits;
/// x itself is correct to 3 bits since x^2 = 1 mod 8).
fn neg_inverse(x: u32) -> u32 {
    let mut inv = x;
    for _ in 0..4 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

#[cfg(test)]
mod tests;

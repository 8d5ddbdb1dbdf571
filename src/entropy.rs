//! Randomness as the core sees it: handed in by the caller, so tests can make it deterministic.

pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// A deterministic generator for tests and simulations (SplitMix64). Never used for secrets
/// in the filter: the shell passes the host's CSPRNG.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl Entropy for SplitMix {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let bytes = z.to_le_bytes();
            let n = chunk.len().min(8);
            if let (Some(dst), Some(src)) = (chunk.get_mut(..n), bytes.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
    }
}

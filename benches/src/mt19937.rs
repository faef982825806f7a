//! The MT19937 generator as GradBench draws its inputs: NumPy's legacy `RandomState`, seeded by
//! the standard `init_genrand`, doubles from two 32-bit outputs.

/// Mersenne Twister MT19937 (32-bit), bit-identical to the reference `genrand_int32`.
///
/// ```
/// let mut r = difi_benches::mt19937::Mt19937::new(31337);
/// let x = r.next_f64();
/// assert!((0.0..1.0).contains(&x));
/// ```
#[derive(Clone, Debug)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    /// Seeded by the reference `init_genrand(seed)`.
    pub fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1812433253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// The next 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) with 53 random bits: `((a >> 5) · 2²⁶ + (b >> 6)) / 2⁵³`.
    pub fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67108864.0 + b) / 9007199254740992.0
    }
}

#[cfg(test)]
mod tests {
    use super::Mt19937;

    #[test]
    fn matches_numpy_random_state_31337() {
        // numpy 2.4.6: np.random.RandomState(31337).random_sample(5).tolist()
        let want = [
            0.7218521074240813,
            0.9664407992811007,
            0.28904906882680115,
            0.17134622674002598,
            0.3716175858787386,
        ];
        let mut r = Mt19937::new(31337);
        for w in want {
            assert_eq!(r.next_f64(), w);
        }
    }

    #[test]
    fn matches_the_reference_first_output_for_seed_5489() {
        // The reference implementation's documented default seed gives 3499211612 first.
        assert_eq!(Mt19937::new(5489).next_u32(), 3499211612);
    }
}

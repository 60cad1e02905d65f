//! The randomness of a line: xoshiro256** (Blackman and Vigna), seeded by
//! splitmix64. Small, fast (a few ns per draw), no system call and no
//! allocation: the same seed gives the same draws, so the same frames get
//! the same decisions. Not for anything secret.

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64: spreads a seed over the state.
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        Rng {
            s: [
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
            ],
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        // xoshiro256**, its four state words by name.
        let [mut a, mut b, mut c, mut d] = self.s;
        let out = b.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = b << 17;
        c ^= a;
        d ^= b;
        b ^= c;
        a ^= d;
        c ^= t;
        d = d.rotate_left(45);
        self.s = [a, b, c, d];
        out
    }

    /// True with probability `t / 2^64` (see [`threshold`]): one draw.
    #[inline]
    pub fn chance(&mut self, t: u64) -> bool {
        t != 0 && self.next_u64() < t
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) (n > 0).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        // 1 - unit() is in (0, 1]: its logarithm is finite.
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A Pareto draw (shape 3) shifted and scaled to mean 0 and standard
    /// deviation 1: a long tail on the late side, as netem's table.
    pub fn pareto(&mut self) -> f64 {
        // Shape 3, scale xm: mean 1.5 xm, sd xm * sqrt(3) / 2.
        const XM: f64 = 1.154_700_538_379_251_5; // 2 / sqrt(3)
        const MEAN: f64 = 1.5 * XM;
        let u = 1.0 - self.unit();
        XM / u.cbrt() - MEAN
    }
}

/// A probability as the integer [`Rng::chance`] compares with.
pub fn threshold(p: f64) -> u64 {
    if p <= 0.0 {
        0
    } else if p >= 1.0 {
        u64::MAX
    } else {
        (p * 18_446_744_073_709_551_616.0) as u64
    }
}

/// A seed mixed with what a line is (port name, direction), so that lines
/// with one seed still draw differently, and each draws the same way
/// every run.
pub fn line_seed(seed: u64, port: &str, egress: bool) -> u64 {
    // FNV-1a over the name: stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in port.bytes().chain([u8::from(egress)]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut x = seed ^ h;
    splitmix(&mut x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert_ne!(line_seed(1, "h1.lan", true), line_seed(1, "h1.lan", false));
    }

    #[test]
    fn distributions_have_their_moments() {
        let mut r = Rng::new(42);
        let n = 200_000;
        let stats = |xs: &[f64]| {
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
            (m, v.sqrt())
        };
        let normal: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let (m, sd) = stats(&normal);
        assert!(m.abs() < 0.01 && (sd - 1.0).abs() < 0.01, "{m} {sd}");
        let pareto: Vec<f64> = (0..n).map(|_| r.pareto()).collect();
        let (m, _) = stats(&pareto);
        assert!(m.abs() < 0.02, "{m}");
        // A long tail: some draws far above the mean, none far below.
        assert!(pareto.iter().any(|&x| x > 4.0));
        assert!(pareto.iter().all(|&x| x > -1.2));
        let p = threshold(0.1);
        let hits = (0..n).filter(|_| r.chance(p)).count();
        assert!((hits as f64 / n as f64 - 0.1).abs() < 0.005, "{hits}");
        assert!(!r.chance(threshold(0.0)));
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}

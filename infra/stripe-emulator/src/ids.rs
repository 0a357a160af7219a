//! Stripe-style ids: a type prefix and a random alphanumeric tail.

use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Tail lengths follow the samples in Stripe's fixtures (`cus_` 14, `sub_` 24, `cs_test_` 58).
pub fn new_id(prefix: &str) -> String {
    let len = match prefix {
        "cus_" | "si_" | "req_" | "prod_" => 14,
        "cs_test_" => 58,
        _ => 24,
    };
    format!("{prefix}{}", random_alnum(len))
}

pub fn random_alnum(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failing is near impossible; uniqueness (not secrecy) is what ids need,
        // so fall back to a counter mixed with the clock rather than failing the request.
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let mut x = COUNTER.fetch_add(1, Ordering::Relaxed)
            ^ (time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64);
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    // 248 = 4 * 62: rejection sampling would be uniform; a slight bias is fine for ids.
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_and_uniqueness() {
        let a = super::new_id("cus_");
        let b = super::new_id("cus_");
        assert!(a.starts_with("cus_") && a.len() == 18);
        assert_ne!(a, b);
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    }
}

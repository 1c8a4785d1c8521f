//! Random bytes from the operating system: a leaf module, so the backend,
//! the keys and the ids can all draw on it without depending on each other.

/// Fills `buf` from the operating system's generator. There is nothing
/// safe to do without randomness (keys, nonces, names), so its failure
/// stops the process.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

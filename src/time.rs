//! Time as the core sees it: Unix seconds handed in by the caller, never read from a clock.

/// Seconds since the Unix epoch. The shell reads the host clock once per callback and
/// passes it down; tests pass whatever moment they need.
pub type UnixTime = u64;

/// `t + secs`, saturating: times come from tokens and must never overflow.
pub fn after(t: UnixTime, secs: u64) -> UnixTime {
    t.saturating_add(secs)
}

//! RTP and NTP time arithmetic: 32-bit RTP timestamps extended to 64 bits, and RTCP sender
//! report NTP times in nanoseconds.

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i128 = 1_000_000_000;

/// The 64-bit value that is congruent to `rtp` modulo 2³² and nearest to `hint`.
///
/// `hint` is where the caller expects the timestamp to be: the previous extended timestamp plus
/// the ticks that passed since, by the local clock. That single rule handles forward wrap-around,
/// small reordering (a slightly older packet) and long pauses (more than half the 32-bit range,
/// ~6.6 h at 90 kHz), which a plain "difference as i32" unwrapper would misread.
pub fn nearest_extended(rtp: u32, hint: i64) -> i64 {
    const MODULUS: i64 = 1 << 32;
    let base = hint.div_euclid(MODULUS) * MODULUS;
    [base - MODULUS, base, base + MODULUS]
        .into_iter()
        .map(|b| b + i64::from(rtp))
        .min_by_key(|candidate| candidate.abs_diff(hint))
        .expect("bug: candidate list is not empty")
}

/// Converts a duration in ticks of `rate` Hz to nanoseconds.
pub fn ticks_to_nanos(ticks: i64, rate: u32) -> i128 {
    i128::from(ticks) * NANOS_PER_SEC / i128::from(rate)
}

/// Converts nanoseconds to ticks of `rate` Hz, rounding to the nearest tick.
pub fn nanos_to_ticks(nanos: i128, rate: u32) -> i128 {
    let scaled = nanos * i128::from(rate);
    (scaled + scaled.signum() * NANOS_PER_SEC / 2) / NANOS_PER_SEC
}

/// Converts a 64-bit NTP timestamp (RFC 5905: seconds since 1900 in the upper 32 bits, the
/// fraction in the lower 32) to nanoseconds since 1900.
pub fn ntp_to_nanos(ntp: u64) -> i128 {
    let secs = i128::from(ntp >> 32);
    let frac = i128::from(ntp & 0xffff_ffff);
    secs * NANOS_PER_SEC + ((frac * NANOS_PER_SEC) >> 32)
}

/// Converts nanoseconds since 1900 to a 64-bit NTP timestamp (saturating outside its range).
pub fn nanos_to_ntp(nanos: i128) -> u64 {
    let nanos = nanos.clamp(0, (i128::from(u32::MAX) + 1) * NANOS_PER_SEC - 1);
    let secs = nanos / NANOS_PER_SEC;
    let frac = ((nanos % NANOS_PER_SEC) << 32) / NANOS_PER_SEC;
    u64::try_from((secs << 32) | frac).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_forward_and_backward() {
        assert_eq!(nearest_extended(5, (1 << 32) - 10), (1 << 32) + 5);
        assert_eq!(nearest_extended(u32::MAX - 2, (1 << 32) + 3), (1 << 32) - 3);
        assert_eq!(nearest_extended(100, 0), 100);
        assert_eq!(nearest_extended(u32::MAX, 0), -1);
    }

    #[test]
    fn ntp_round_trips() {
        let ntp = (3_900_000_000u64 << 32) | 0x8000_0000;
        assert_eq!(
            ntp_to_nanos(ntp),
            3_900_000_000 * NANOS_PER_SEC + 500_000_000
        );
        assert_eq!(nanos_to_ntp(ntp_to_nanos(ntp)), ntp);
    }

    proptest! {
        #[test]
        fn nearest_is_congruent_and_close(rtp: u32, hint in -(1i64 << 50)..(1i64 << 50)) {
            let ext = nearest_extended(rtp, hint);
            prop_assert_eq!(ext.rem_euclid(1 << 32), i64::from(rtp));
            prop_assert!(ext.abs_diff(hint) <= 1 << 31);
        }

        #[test]
        fn steady_stream_unwraps_across_many_wraps(start: u32, step in 1u32..200_000, n in 1usize..2000) {
            let mut ext = i64::from(start);
            let mut rtp = start;
            for _ in 0..n {
                rtp = rtp.wrapping_add(step);
                let next = nearest_extended(rtp, ext + i64::from(step));
                prop_assert_eq!(next, ext + i64::from(step));
                ext = next;
            }
        }

        #[test]
        fn tick_conversion_is_within_half_a_tick(ticks in -(1i64 << 40)..(1i64 << 40), rate in prop::sample::select(vec![48_000u32, 90_000, 1000])) {
            let back = nanos_to_ticks(ticks_to_nanos(ticks, rate), rate);
            prop_assert!((back - i128::from(ticks)).abs() <= 1);
        }
    }
}

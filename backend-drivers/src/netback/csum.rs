//! Completing a blank L4 checksum in software, for a packet the sender
//! marked `csum_blank` (`NETTXF_csum_blank`: Linux `CHECKSUM_PARTIAL`) that
//! goes to a frontend which cannot take it blank (`feature-no-csum-offload`
//! = 1: Linux's `skb_checksum_help` before netback queues it). IPv4 TCP and
//! UDP in an Ethernet frame (optionally one 802.1Q tag), the checksums
//! RFC 791/793/768 define: the one's-complement sum of a pseudo-header
//! (source, destination, protocol, L4 length) and the L4 segment.
//!
//! Invariant: reads and writes stay inside the frame (every length comes
//! from the frame and is checked against it, never trusted); anything else
//! (IPv6, fragments, other protocols, truncated headers) is left untouched
//! and reported `false`. Never panics.
#![forbid(unsafe_code)]

/// `ETH_HLEN`.
pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last
/// byte padded with zero), added to `sum` without folding.
fn sum_words(data: &[u8], mut sum: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Fill the TCP or UDP checksum of the IPv4 packet in Ethernet `frame`:
/// true if done; false (frame unchanged) if it is not an unfragmented
/// IPv4 TCP/UDP packet whose headers fit in the frame.
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    let Some((l3, proto, l4_len)) = ipv4_l4(frame) else { return false };
    let l4 = l3 + usize::from(frame[l3] & 0x0f) * 4;
    let csum_at = match proto {
        IPPROTO_TCP if l4_len >= 20 => l4 + 16,
        IPPROTO_UDP if l4_len >= 8 => l4 + 6,
        _ => return false,
    };
    let Some(segment) = frame.get_mut(l4..l4 + l4_len) else { return false };
    let field = csum_at - l4;
    segment[field] = 0;
    segment[field + 1] = 0;
    // Pseudo-header: source and destination, zero + protocol, L4 length.
    let mut sum = 0u64;
    sum = sum_words(&frame[l3 + 12..l3 + 20], sum);
    sum += u64::from(proto) + l4_len as u64;
    sum = sum_words(&frame[l4..l4 + l4_len], sum);
    let mut c = !fold(sum);
    if proto == IPPROTO_UDP && c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones.
    }
    frame[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// The IPv4 header's offset, protocol and L4 length, if `frame` holds an
/// unfragmented IPv4 packet whose header and payload fit.
fn ipv4_l4(frame: &[u8]) -> Option<(usize, u8, usize)> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == ETH_P_8021Q {
        ethertype = be16(frame, 16)?;
        l3 += 4;
    }
    if ethertype != ETH_P_IP {
        return None;
    }
    let vihl = *frame.get(l3)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || frame.len() < l3 + ihl {
        return None;
    }
    let total = usize::from(be16(frame, l3 + 2)?);
    let frag = be16(frame, l3 + 6)?;
    // More-fragments set or a fragment offset: the L4 header is not all here.
    if frag & 0x3fff != 0 || total < ihl || frame.len() < l3 + total {
        return None;
    }
    Some((l3, frame[l3 + 9], total - ihl))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// A UDP datagram (192.168.1.1:1234 -> 192.168.1.2:80, payload
    /// "hello") whose checksum was worked out by hand from RFC 768:
    /// pseudo 0xc0a8+0x0101+0xc0a8+0x0102+0x0011+0x000d = 0x18371,
    /// header 0x04d2+0x0050+0x000d = 0x052f, data 0x6865+0x6c6c+0x6f00 =
    /// 0x143d1; total 0x2cc71 folds to 0xcc73, complement 0x338c.
    fn udp_frame() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 2, 0x00, 0x16, 0x3e, 0, 0, 1, 0x08, 0x00]);
        // IPv4: ihl 5, total 33, id 0, DF, ttl 64, udp, checksum (not ours), src, dst.
        f.extend_from_slice(&[0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 168, 1, 1, 192, 168, 1, 2]);
        f.extend_from_slice(&[0x04, 0xd2, 0x00, 0x50, 0x00, 0x0d, 0xab, 0xcd]);
        f.extend_from_slice(b"hello");
        f
    }

    #[test]
    fn udp_checksum_matches_the_rfc768_value_worked_by_hand() {
        let mut f = udp_frame();
        assert!(complete_l4_checksum(&mut f));
        assert_eq!(&f[40..42], &[0x33, 0x8c]);
    }

    /// TCP: the known SYN below verifies (the sum over pseudo-header and
    /// segment, checksum included, folds to 0xffff) once completed.
    #[test]
    fn tcp_checksum_completed_over_a_blank_field_verifies() {
        let mut f = Vec::new();
        f.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 44, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0xc3, 0x50, 0x00, 0x16, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0xde, 0xad, 0, 0]);
        f.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS option.
        assert!(complete_l4_checksum(&mut f));
        let l4 = &f[34..58];
        let mut sum = sum_words(&f[26..34], 0) + 6 + 24;
        sum = sum_words(l4, sum);
        assert_eq!(fold(sum), 0xffff, "the completed segment checks");
        // And it is the same value whatever the blank field held (Linux
        // leaves the pseudo-header sum there).
        let done = [f[50], f[51]];
        f[50] = 0x12;
        assert!(complete_l4_checksum(&mut f));
        assert_eq!([f[50], f[51]], done);
    }

    #[test]
    fn non_ipv4_fragments_and_truncated_frames_are_left_alone() {
        let good = udp_frame();
        let mut ipv6 = good.clone();
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        let mut frag = good.clone();
        frag[20] = 0x20; // More fragments.
        let mut icmp = good.clone();
        icmp[23] = 1;
        let mut long_total = good.clone();
        long_total[17] = 200;
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x4f;
        for mut f in [ipv6, frag, icmp, long_total, bad_ihl] {
            let before = f.clone();
            assert!(!complete_l4_checksum(&mut f));
            assert_eq!(f, before);
        }
        for n in 0..good.len() {
            let mut t = good[..n].to_vec();
            assert!(!complete_l4_checksum(&mut t), "truncated to {n}");
        }
    }

    #[test]
    fn a_vlan_tagged_udp_frame_gets_the_same_checksum() {
        let plain = udp_frame();
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        f.extend_from_slice(&plain[12..]);
        assert!(complete_l4_checksum(&mut f));
        assert_eq!(&f[44..46], &[0x33, 0x8c]);
    }
}

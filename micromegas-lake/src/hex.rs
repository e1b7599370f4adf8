//! Lowercase hex, the text of trace and span ids in the tables, written and read a word at a
//! time: ids go from bytes to text in the collector's mapping and back to bytes in a row
//! block's stored form, once per id of every request.
//!
//! ```
//! let mut text = [0u8; 16];
//! assert_eq!(micromegas_lake::hex::encode_into(&[0x00, 0xab, 0x10, 0xff], &mut text), "00ab10ff");
//! ```

/// One in each byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of each byte of a word.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The lowercase hex of `bytes`, written at the start of `out`: as many bytes as `out` has
/// room for two digits each.
pub fn encode_into<'o>(bytes: &[u8], out: &'o mut [u8]) -> &'o str {
    let n = bytes.len().min(out.len() / 2);
    let (words, rest) = bytes[..n].as_chunks::<4>();
    for (four, eight) in words.iter().zip(out.chunks_exact_mut(8)) {
        eight.copy_from_slice(&encode_word(u32::from_le_bytes(*four)).to_le_bytes());
    }
    let done = 2 * (n - rest.len());
    for (b, pair) in rest.iter().zip(out[done..].chunks_exact_mut(2)) {
        let digits = encode_word(u32::from(*b)).to_le_bytes();
        pair.copy_from_slice(&digits[..2]);
    }
    // Only ASCII digits were written.
    micromegas_core::transit::wire::utf8(&out[..2 * n]).unwrap_or_default()
}

/// Four bytes (the first in the low byte) as their eight lowercase hex digits (the first in
/// the low byte).
#[inline]
fn encode_word(four: u32) -> u64 {
    // Each byte in the low byte of 16 bits, then its two nibbles in two bytes, high first.
    let x = u64::from(four);
    let spread = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let spread = (spread | (spread << 8)) & 0x00ff_00ff_00ff_00ff;
    let nibbles = ((spread >> 4) & 0x000f_000f_000f_000f) | ((spread & 0x000f_000f_000f_000f) << 8);
    // '0' + n, plus 39 more for n from 10 up ('a' is '0' + 49): n + 0x76 reaches 0x80 exactly
    // when n is at least 10, with no carry out of its byte.
    let letters = ((nibbles + 0x76 * ONES) >> 7) & ONES;
    nibbles + u64::from(b'0') * ONES + letters * 39
}

/// Eight bytes of text (the first in the low byte) read as eight lowercase hex digits: the
/// four bytes they spell (the first in the low byte), and a word that is not zero if any of
/// the eight is not a lowercase hex digit (upper case would not come back the same).
#[inline]
pub(crate) fn decode_word(x: u64) -> (u32, u64) {
    // For a byte under 0x80, adding 0x80 - k sets its high bit exactly when it is at least k,
    // and carries into no other byte. Bytes from 0x80 up are refused on their own.
    let at_least = |k: u8| x.wrapping_add(u64::from(0x80 - k) * ONES);
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    let not_hex = (x | !(digit | letter)) & HIGHS;
    // Each digit's value: its low four bits, plus 9 for a letter ('a' is 0x61).
    let nibbles = (x & (0x0f * ONES)) + ((letter >> 7) & ONES) * 9;
    // Each pair of digits as one byte, in the low byte of its 16 bits; then those four bytes
    // side by side.
    const EVEN: u64 = 0x00ff_00ff_00ff_00ff;
    let pairs = ((nibbles & EVEN) << 4) | ((nibbles >> 8) & EVEN);
    let packed = (pairs & 0xff)
        | ((pairs >> 8) & 0xff00)
        | ((pairs >> 16) & 0xff_0000)
        | ((pairs >> 24) & 0xff00_0000);
    (packed as u32, not_hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What eight digits spell, one digit at a time; `None` unless all are lowercase hex.
    fn decoded_one_digit_at_a_time(digits: [u8; 8]) -> Option<u32> {
        let nibble = |d: u8| match d {
            b'0'..=b'9' => Some(d - b'0'),
            b'a'..=b'f' => Some(d - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0u8; 4];
        for (b, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *b = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(u32::from_le_bytes(bytes))
    }

    fn decoded(digits: [u8; 8]) -> Option<u32> {
        let (value, not_hex) = decode_word(u64::from_le_bytes(digits));
        (not_hex == 0).then_some(value)
    }

    #[test]
    fn every_byte_in_every_place_of_a_word_is_read_as_one_digit_would_be() {
        for place in 0..8 {
            for byte in 0..=255u8 {
                let mut digits = *b"0f9a1b2c";
                digits[place] = byte;
                assert_eq!(
                    decoded(digits),
                    decoded_one_digit_at_a_time(digits),
                    "{digits:?}"
                );
            }
        }
        assert_eq!(decoded(*b"00ff10a0"), Some(0xa010_ff00));
    }

    #[test]
    fn every_byte_is_written_as_its_two_digits() {
        for byte in 0..=255u8 {
            let mut out = [0u8; 2];
            assert_eq!(encode_into(&[byte], &mut out), format!("{byte:02x}"));
        }
        let mut out = [0u8; 8];
        assert_eq!(encode_into(&[1, 2, 3, 4, 5], &mut out), "01020304");
        assert_eq!(encode_into(&[], &mut out), "");
    }

    proptest! {
        #[test]
        fn any_word_is_read_as_one_digit_at_a_time_would_be(
            digits in proptest::array::uniform8(prop_oneof![
                3 => proptest::sample::select(b"0123456789abcdef".to_vec()),
                1 => any::<u8>(),
            ])
        ) {
            prop_assert_eq!(decoded(digits), decoded_one_digit_at_a_time(digits));
        }

        #[test]
        fn bytes_come_back_from_their_hex(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut text = vec![0u8; 2 * bytes.len()];
            let hex = encode_into(&bytes, &mut text).to_owned();
            let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(&hex, &expected);
            if bytes.len().is_multiple_of(4) {
                let back: Vec<u8> = hex
                    .as_bytes()
                    .chunks_exact(8)
                    .map(|w| decoded(w.try_into().expect("eight digits")).expect("hex"))
                    .flat_map(u32::to_le_bytes)
                    .collect();
                prop_assert_eq!(back, bytes);
            }
        }
    }
}

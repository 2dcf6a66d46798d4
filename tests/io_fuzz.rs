//! Property tests: no byte sequence makes the model or checkpoint loader panic or
//! allocate past the payload limit — random bytes, truncations, bit flips, and
//! random payloads behind a valid header and checksum (which reach the decoder).

use ferrocnn::io::{load_checkpoint, load_model, save_model};
use ferrocnn::zoo;
use proptest::prelude::*;

fn valid_file() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.bin");
    save_model(&zoo::r1((1, 12, 12), 3, 0), &path).expect("save");
    std::fs::read(&path).expect("read")
}

fn with_header(payload: &[u8]) -> Vec<u8> {
    let mut bytes = b"FERROCNN".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.push(1);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

fn load_bytes(bytes: &[u8]) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.bin");
    std::fs::write(&path, bytes).expect("write");
    let _ = load_checkpoint(&path);
    load_model(&path).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(!load_bytes(&bytes));
    }

    #[test]
    fn truncated_files_are_rejected(cut in 0usize..1000) {
        let file = valid_file();
        let cut = cut * file.len() / 1000;
        prop_assert!(!load_bytes(&file[..cut]));
    }

    #[test]
    fn bit_flips_are_rejected(at in 0usize..10_000, bit in 0u8..8) {
        let mut file = valid_file();
        let at = at % file.len();
        file[at] ^= 1 << bit;
        prop_assert!(!load_bytes(&file));
    }

    #[test]
    fn hostile_payloads_behind_a_valid_header_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
    ) {
        let _ = load_bytes(&with_header(&payload));
        // A real payload with a few bits flipped (and the checksum recomputed)
        // reaches the decoder: it must fail or succeed, never panic.
        let file = valid_file();
        let mut real = file[25..].to_vec();
        for (at, bit) in flips {
            let i = at % real.len();
            real[i] ^= 1 << bit;
        }
        let _ = load_bytes(&with_header(&real));
    }
}

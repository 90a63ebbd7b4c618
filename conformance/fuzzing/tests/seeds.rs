//! Replays the committed seed corpus (`fuzz/seeds/<target>/`) through every fuzz
//! target's body on stable: what the fuzzers start from, and every input that
//! ever found a bug (kept there once fixed), must keep passing.

use std::fs;
use std::path::PathBuf;

#[test]
fn every_seed_passes_its_target() {
    let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    let mut replayed = 0;
    for (target, run) in hawser_fuzzing::TARGETS {
        let dir = seeds.join(target);
        let entries = fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            let input = fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            run(&input);
            count += 1;
        }
        assert!(count > 0, "no seeds for {target} in {}", dir.display());
        replayed += count;
    }
    println!("replayed {replayed} seeds");
}

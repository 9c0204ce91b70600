//! The manual-page corpus without network or tools: text cleaning, language table, page
//! discovery, hashes, the binary's errors, and training on the shipped sample.

use candle_core::{DType, Device};
use nexus_lab::corpus::{self, language, plain_text, LANGUAGES};
use nexus_lab::llama::{FileSource, HeldOutSource, TrainConfig, Trainer, Variant};
use std::path::Path;
use std::process::Command;

#[test]
fn terminal_formatting_is_stripped() {
    // Bold is X\bX, underline _\bX, also for multi-byte characters.
    let rendered = "NAME\n       B\u{8}BE\u{8}E _\u{8}u_\u{8}n\u{8}nder \u{dc}\u{8}\u{dc}bung\n\n\n\n   next\n";
    assert_eq!(plain_text(rendered), "NAME\nBE under Übung\n\nnext\n");
}

#[test]
fn languages_are_pinned_and_unknown_ones_are_named() {
    assert_eq!(LANGUAGES.len(), 14);
    for l in LANGUAGES {
        assert!(l.version.contains("4.18.1-1") || l.code == "en", "{l:?}");
        assert_eq!(language(l.code).unwrap(), l);
    }
    let err = language("tlh").unwrap_err().to_string();
    assert!(
        err.contains("unknown language `tlh`") && err.contains("pt-br"),
        "{err}"
    );
}

#[test]
fn pages_are_found_in_man_sections_in_path_order() {
    let root = Path::new("tests/data/manpages-tree");
    let found = corpus::pages(root, language("de").unwrap()).unwrap();
    let names: Vec<String> = found
        .iter()
        .map(|p| {
            p.strip_prefix(root.join("usr/share/man/de"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["man1/eins.1", "man1/zwei.1", "man8/drei.8"]);
    assert!(
        corpus::pages(root, language("fr").unwrap()).is_err(),
        "a missing locale folder"
    );
}

#[test]
fn sha256_matches_the_standard_vector() {
    // FIPS 180-2, appendix B.1.
    assert_eq!(
        corpus::sha256(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn the_fetch_command_names_what_is_missing() {
    let bin = env!("CARGO_BIN_EXE_corpus");
    let o = Command::new(bin)
        .args(["fetch", "--languages", "de,xx", "--out"])
        .arg(std::env::temp_dir().join("nexus-lab-corpus-unused"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown language `xx`"));
    // No tool on the PATH: the first one needed is named.
    let o = Command::new(bin)
        .args(["fetch", "--languages", "de", "--out"])
        .arg(std::env::temp_dir().join("nexus-lab-corpus-unused"))
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`apt-get` not found") && err.lines().count() == 1,
        "{err}"
    );
}

/// The corpus's files are training sources as they are: per-language sources, a held-out one.
#[test]
fn a_model_trains_on_the_sample_corpus() {
    let src = |name: &str| FileSource {
        name: name.into(),
        path: format!("tests/data/manpages/{name}.txt").into(),
        weight: 1.0,
    };
    let cfg = TrainConfig {
        preset: "micro".into(),
        variant: Variant::Nexus,
        steps: 4,
        accum: 2,
        micro_batch: 2,
        seq_len: 16,
        eval_every: 4,
        checkpoint_every: 4,
        sources: vec![src("de"), src("fr")],
        held_out: vec![{
            let s = src("nl");
            HeldOutSource {
                name: s.name,
                path: s.path,
            }
        }],
        ..TrainConfig::default()
    };
    let out = std::env::temp_dir().join(format!("nexus-lab-corpus-train-{}", std::process::id()));
    std::fs::remove_dir_all(&out).ok();
    let mut t = Trainer::new(cfg, &out, &Device::Cpu, DType::F32).unwrap();
    let e = t.run(&indicatif::ProgressBar::hidden()).unwrap().unwrap();
    let names: Vec<&str> = e.held_out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["nl"]);
    assert!(e.held_out_mean.is_finite() && e.gradient_cosine.is_finite());
    drop(t);
    std::fs::remove_dir_all(out).ok();
}

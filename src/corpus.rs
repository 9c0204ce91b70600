//! A real multilingual corpus for the Llama experiments: Debian's translated manual pages.
//!
//! The same pages exist in many related languages (Romance, Germanic, Slavic), so held-out
//! languages are related to the training ones, the paper's setting. The `corpus` binary
//! downloads the pinned packages with `apt-get download` (no root needed), unpacks them with
//! `dpkg-deb -x`, renders every page with `mandoc -T utf8`, strips the terminal formatting
//! ([`plain_text`]) and writes one text file per language with a manifest ([`Manifest`]). This
//! module holds the parts that need no network and no tool, which the tests exercise on the
//! sample in `tests/data/`.

use crate::error::{Error, Result};
use crate::fsio::io_error;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A language of the corpus: its code, its Debian package, the pinned version and the folder
/// under `usr/share/man` that holds its pages (`""` for English).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Language {
    /// The code used on the command line and in file names.
    pub code: &'static str,
    /// Debian package.
    pub package: &'static str,
    /// Pinned version (Debian 12 "bookworm").
    pub version: &'static str,
    /// Locale folder under `usr/share/man`.
    pub locale: &'static str,
}

/// Every language the corpus knows, with its pinned package version.
pub const LANGUAGES: [Language; 14] = [
    Language {
        code: "en",
        package: "manpages",
        version: "6.03-2",
        locale: "",
    },
    Language {
        code: "de",
        package: "manpages-de",
        version: "4.18.1-1",
        locale: "de",
    },
    Language {
        code: "fr",
        package: "manpages-fr",
        version: "4.18.1-1",
        locale: "fr",
    },
    Language {
        code: "es",
        package: "manpages-es",
        version: "4.18.1-1",
        locale: "es",
    },
    Language {
        code: "it",
        package: "manpages-it",
        version: "4.18.1-1",
        locale: "it",
    },
    Language {
        code: "pt-br",
        package: "manpages-pt-br",
        version: "4.18.1-1",
        locale: "pt_BR",
    },
    Language {
        code: "ro",
        package: "manpages-ro",
        version: "4.18.1-1",
        locale: "ro",
    },
    Language {
        code: "nl",
        package: "manpages-nl",
        version: "4.18.1-1",
        locale: "nl",
    },
    Language {
        code: "sv",
        package: "manpages-sv",
        version: "4.18.1-1",
        locale: "sv",
    },
    Language {
        code: "da",
        package: "manpages-da",
        version: "4.18.1-1",
        locale: "da",
    },
    Language {
        code: "pl",
        package: "manpages-pl",
        version: "1:4.18.1-1",
        locale: "pl",
    },
    Language {
        code: "cs",
        package: "manpages-cs",
        version: "4.18.1-1",
        locale: "cs",
    },
    Language {
        code: "ru",
        package: "manpages-ru",
        version: "4.18.1-1",
        locale: "ru",
    },
    Language {
        code: "uk",
        package: "manpages-uk",
        version: "4.18.1-1",
        locale: "uk",
    },
];

/// The language with this code, or an error listing the known ones.
pub fn language(code: &str) -> Result<Language> {
    LANGUAGES
        .iter()
        .copied()
        .find(|l| l.code == code)
        .ok_or_else(|| Error::InvalidArgument {
            name: "languages",
            reason: format!(
                "unknown language `{code}` (known: {})",
                LANGUAGES.map(|l| l.code).join(", ")
            ),
        })
}

/// Text as a terminal would show it: `mandoc -T utf8` marks bold as `X\bX` and underline as
/// `_\bX`; a backspace removes the character before it. Leading indentation is dropped and
/// runs of blank lines become one, so the bytes a model sees are words, not layout.
pub fn plain_text(rendered: &str) -> String {
    let mut chars: Vec<char> = Vec::with_capacity(rendered.len());
    for c in rendered.chars() {
        if c == '\u{8}' {
            chars.pop();
        } else {
            chars.push(c);
        }
    }
    let text: String = chars.into_iter().collect();
    let mut out = String::with_capacity(text.len());
    let mut blank = true;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(line);
            out.push('\n');
            blank = false;
        }
    }
    out
}

/// The manual pages of `language` in an unpacked package tree (`root/usr/share/man/<locale>/man*/`),
/// sorted by path so the corpus is the same on every run.
pub fn pages(root: &Path, language: Language) -> Result<Vec<PathBuf>> {
    let base = root.join("usr/share/man").join(language.locale);
    let sections = std::fs::read_dir(&base).map_err(io_error(&base))?;
    let mut found = Vec::new();
    for section in sections {
        let section = section.map_err(io_error(&base))?;
        let name = section.file_name();
        if !name.to_string_lossy().starts_with("man") || !section.path().is_dir() {
            continue;
        }
        for page in std::fs::read_dir(section.path()).map_err(io_error(&section.path()))? {
            let path = page.map_err(io_error(&section.path()))?.path();
            if path.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// One language's entry in `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Language code.
    pub language: String,
    /// Debian package and version.
    pub package: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of the downloaded `.deb`.
    pub deb_sha256: String,
    /// Its size.
    pub deb_bytes: u64,
    /// Pages rendered.
    pub pages: usize,
    /// Pages `mandoc` could not render (skipped).
    pub pages_failed: usize,
    /// Size of `<language>.txt`.
    pub text_bytes: u64,
    /// SHA-256 of `<language>.txt`.
    pub text_sha256: String,
}

/// `manifest.json`: what was fetched, from where, and what came out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// One entry per language, in the order fetched.
    pub languages: Vec<Entry>,
    /// `mandoc`'s version line.
    pub mandoc: String,
    /// The crate version that wrote it.
    pub crate_version: String,
}

pub use crate::fsio::sha256;

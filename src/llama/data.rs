//! Training data: named byte-level sources with mixture weights, validation batches per source,
//! and held-out sources never trained on.
//!
//! Built-in sources are generated from a seed:
//! - a family of related synthetic languages: first-order Markov chains over a 12-letter
//!   alphabet whose transition logits are a shared base plus `spread` times per-language noise,
//!   so training and held-out languages are i.i.d. draws from one distribution (Thm 2.2's setting)
//!   and `spread` sets how different they are;
//! - an arithmetic skill source (`a+b=c;`) with an exact-match task.
//!
//! User sources are files: plain text, or JSONL with a `"text"` field per line.

use crate::error::{Error, Result};
use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;

const ALPHABET: &[u8] = b"abcdefghijk ";

/// A named byte source.
#[derive(Clone, Debug)]
pub enum Source {
    /// A Markov language: cumulative transition rows over [`ALPHABET`].
    Markov {
        name: String,
        cumulative: Vec<Vec<f64>>,
    },
    /// A skill: examples `prompt answer` back to back.
    Skill { name: String, skill: Skill },
    /// Bytes of a user file, sampled as random windows.
    Text { name: String, bytes: Vec<u8> },
}

impl Source {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            Source::Markov { name, .. }
            | Source::Skill { name, .. }
            | Source::Text { name, .. } => name,
        }
    }

    /// Language `index` of the family with base seed `seed` and the given spread.
    pub fn language(seed: u64, index: usize, spread: f64) -> Result<Self> {
        if !(spread >= 0.0 && spread.is_finite()) {
            return Err(Error::Data(format!(
                "language spread must be finite and >= 0, got {spread}"
            )));
        }
        let n = ALPHABET.len();
        let mut base_rng = crate::rng_for(seed, "language-base");
        let base: Vec<f64> = (0..n * n)
            .map(|_| 2.0 * Distribution::<f64>::sample(&StandardNormal, &mut base_rng))
            .collect();
        let mut rng = crate::rng_for(seed, &format!("language:{index}"));
        let cumulative = (0..n)
            .map(|i| {
                let logits: Vec<f64> = (0..n)
                    .map(|j| {
                        base[i * n + j]
                            + spread * Distribution::<f64>::sample(&StandardNormal, &mut rng)
                    })
                    .collect();
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f64 = w.iter().sum();
                w.iter()
                    .scan(0.0, |acc, x| {
                        *acc += x / total;
                        Some(*acc)
                    })
                    .collect()
            })
            .collect();
        Ok(Source::Markov {
            name: format!("lang{index}"),
            cumulative,
        })
    }

    /// A user source from a file: plain text, or JSONL (`.jsonl`) with a `"text"` field per line.
    pub fn from_file(name: &str, path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).map_err(|e| {
            Error::Data(format!(
                "source `{name}`: cannot read {}: {e}",
                path.display()
            ))
        })?;
        let bytes = if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
            let text = String::from_utf8(raw).map_err(|_| {
                Error::Data(format!("source `{name}`: {} is not UTF-8", path.display()))
            })?;
            let mut out = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    Error::Data(format!(
                        "source `{name}`: {} line {}: {e}",
                        path.display(),
                        i + 1
                    ))
                })?;
                let t = v.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
                    Error::Data(format!(
                        "source `{name}`: {} line {} has no string field \"text\"",
                        path.display(),
                        i + 1
                    ))
                })?;
                out.extend_from_slice(t.as_bytes());
                out.push(b'\n');
            }
            if out.iter().all(|&b| b == b'\n') {
                return Err(Error::Data(format!(
                    "source `{name}` ({}) has no text: every \"text\" field is empty",
                    path.display()
                )));
            }
            out
        } else {
            raw
        };
        if bytes.len() < 2 {
            return Err(Error::Data(format!(
                "source `{name}` ({}) is empty",
                path.display()
            )));
        }
        Ok(Source::Text {
            name: name.into(),
            bytes,
        })
    }

    /// `len` bytes from the source.
    pub fn sample(&self, len: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
        match self {
            Source::Markov { cumulative, .. } => {
                let mut state = rng.random_range(0..ALPHABET.len());
                (0..len)
                    .map(|_| {
                        let u: f64 = rng.random();
                        state = cumulative[state]
                            .iter()
                            .position(|&c| u <= c)
                            .unwrap_or(ALPHABET.len() - 1);
                        ALPHABET[state]
                    })
                    .collect()
            }
            Source::Skill { skill, .. } => {
                let mut out = Vec::with_capacity(len + 16);
                while out.len() < len {
                    let (prompt, answer) = skill.example(rng);
                    out.extend_from_slice(prompt.as_bytes());
                    out.extend_from_slice(answer.as_bytes());
                }
                out.truncate(len);
                out
            }
            Source::Text { bytes, .. } => {
                let start = rng.random_range(0..bytes.len());
                (0..len).map(|i| bytes[(start + i) % bytes.len()]).collect()
            }
        }
    }
}

/// A skill with an exact-match task: the model must complete `prompt` with `answer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skill {
    /// `a+b=` -> `c;` with `a, b < 100`.
    Arithmetic,
    /// Up to five opening brackets then `=` -> the closing brackets in order, then `;`.
    Brackets,
    /// Three `key digit` pairs, `?key=` -> its digit and `;`.
    Recall,
}

impl Skill {
    /// The skill named `name` (`arithmetic`, `brackets`, `recall`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "arithmetic" => Ok(Skill::Arithmetic),
            "brackets" => Ok(Skill::Brackets),
            "recall" => Ok(Skill::Recall),
            other => Err(Error::Data(format!(
                "unknown skill `{other}` (arithmetic, brackets, recall)"
            ))),
        }
    }

    /// One `(prompt, answer)` example.
    pub fn example(&self, rng: &mut ChaCha8Rng) -> (String, String) {
        match self {
            Skill::Arithmetic => {
                let (a, b) = (rng.random_range(0..100u32), rng.random_range(0..100u32));
                (format!("{a}+{b}="), format!("{};", a + b))
            }
            Skill::Brackets => {
                const PAIRS: [(char, char); 4] = [('(', ')'), ('[', ']'), ('{', '}'), ('<', '>')];
                let opened: Vec<(char, char)> = (0..rng.random_range(1..=5))
                    .map(|_| PAIRS[rng.random_range(0..4)])
                    .collect();
                let prompt: String = opened
                    .iter()
                    .map(|p| p.0)
                    .chain(std::iter::once('='))
                    .collect();
                let answer: String = opened
                    .iter()
                    .rev()
                    .map(|p| p.1)
                    .chain(std::iter::once(';'))
                    .collect();
                (prompt, answer)
            }
            Skill::Recall => {
                let mut keys: Vec<char> = "abcdefgh".chars().collect();
                let mut pairs = Vec::new();
                for _ in 0..3 {
                    let k = keys.remove(rng.random_range(0..keys.len()));
                    pairs.push((k, rng.random_range(0..10u32)));
                }
                let (qk, qv) = pairs[rng.random_range(0..3)];
                let context: String = pairs.iter().map(|(k, v)| format!("{k}{v}")).collect();
                (format!("{context}?{qk}="), format!("{qv};"))
            }
        }
    }
}

/// The training mixture, the held-out sources, and the seed their batches derive from.
#[derive(Clone, Debug)]
pub struct DataSet {
    /// Training sources.
    pub sources: Vec<Source>,
    /// Mixture weights (normalised).
    pub weights: Vec<f64>,
    /// Sources never trained on.
    pub held_out: Vec<Source>,
    /// Seed of every batch.
    pub seed: u64,
}

impl DataSet {
    /// Validates and normalises the mixture.
    pub fn new(
        sources: Vec<Source>,
        weights: Vec<f64>,
        held_out: Vec<Source>,
        seed: u64,
    ) -> Result<Self> {
        if sources.is_empty() {
            return Err(Error::Data("need at least one training source".into()));
        }
        if weights.len() != sources.len() || weights.iter().any(|w| !(*w > 0.0 && w.is_finite())) {
            return Err(Error::Data(format!(
                "need one positive finite weight per source ({} sources, weights {weights:?})",
                sources.len()
            )));
        }
        let total: f64 = weights.iter().sum();
        Ok(Self {
            weights: weights.iter().map(|w| w / total).collect(),
            sources,
            held_out,
            seed,
        })
    }

    /// The built-in family: `k` training languages and `h` held-out ones, equal weights.
    pub fn languages(seed: u64, k: usize, h: usize, spread: f64) -> Result<Self> {
        let sources = (0..k)
            .map(|i| Source::language(seed, i, spread))
            .collect::<Result<Vec<_>>>()?;
        let held_out = (k..k + h)
            .map(|i| Source::language(seed, i, spread))
            .collect::<Result<Vec<_>>>()?;
        Self::new(sources, vec![1.0; k], held_out, seed)
    }

    /// The source of micro-batch `micro` of outer step `step`, and its tokens `(batch, len + 1)`,
    /// both a pure function of the seed and the position (so a resumed run sees the same data).
    pub fn micro_batch(
        &self,
        step: usize,
        micro: usize,
        batch: usize,
        len: usize,
    ) -> (usize, Vec<u32>) {
        let mut rng = crate::rng_for(self.seed, &format!("batch:{step}:{micro}"));
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let source = self.weights.iter().position(|w| {
            acc += w;
            u <= acc
        });
        let source = source.unwrap_or(self.sources.len() - 1);
        (
            source,
            self.rows(&self.sources[source], &mut rng, batch, len),
        )
    }

    /// Fixed validation tokens of a source.
    pub fn validation(&self, source: &Source, batch: usize, len: usize) -> Vec<u32> {
        let mut rng = crate::rng_for(self.seed, &format!("validation:{}", source.name()));
        self.rows(source, &mut rng, batch, len)
    }

    fn rows(&self, source: &Source, rng: &mut ChaCha8Rng, batch: usize, len: usize) -> Vec<u32> {
        (0..batch)
            .flat_map(|_| source.sample(len + 1, rng))
            .map(u32::from)
            .collect()
    }
}

//! Reporting helpers shared by the bench binaries (`churn`, and later
//! `binary_trees`, `collector`, ...).
//!
//! Each bench binary uses a custom `main` instead of `criterion_main!`: it runs
//! its criterion groups, calls [`Criterion::final_summary`], then prints one
//! table per group with [`print_ratio_table`], comparing every contender with a
//! baseline (usually `Box`).
//!
//! The numbers come from criterion's own output,
//! `<target>/criterion/<group>/<function>/new/estimates.json` (mean point
//! estimate, in nanoseconds per iteration). Criterion's own `time:` line shows
//! its typical estimate, which is the slope of a linear fit when it sampled
//! with linearly growing iteration counts (the usual case), so the two can
//! differ a little on a noisy machine.
//!
//! [`Criterion::final_summary`]: criterion::Criterion::final_summary

// Each bench binary compiles its own copy of this module and uses only part of
// it; the rest would otherwise warn as dead code.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// When [`mark_run_start`] was called; results older than this are stale.
static RUN_START: OnceLock<SystemTime> = OnceLock::new();

/// Records the start of this run. Call it first thing in `main`: afterwards
/// [`print_ratio_table`] flags any `estimates.json` written before this moment
/// (e.g. a contender skipped by a name filter) as a stale, earlier result.
pub fn mark_run_start() {
    // Filesystem timestamps may be coarser than the clock: step back a little
    // so a file written right at the start is not flagged.
    let now = SystemTime::now();
    let start = now.checked_sub(std::time::Duration::from_secs(1)).unwrap_or(now);
    let _ = RUN_START.set(start);
}

/// Whether this process runs criterion in benchmark mode, i.e. will write
/// fresh `estimates.json` files. Mirrors criterion's own argument handling:
/// `cargo bench` passes `--bench`; `cargo test --benches` does not (test mode);
/// `--test`, `--list` and `--profile-time` do not measure either.
pub fn is_benchmark_mode() -> bool {
    let mut bench = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => bench = true,
            "--test" | "--list" => return false,
            a if a == "--profile-time" || a.starts_with("--profile-time=") => return false,
            _ => {}
        }
    }
    bench
}

/// Criterion's output directory, resolved the way criterion 0.7 resolves it:
/// `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the target
/// directory `cargo metadata` reports (covers a `build.target-dir` setting),
/// else `target/criterion` under the workspace root.
///
/// The workspace root is this package's `CARGO_MANIFEST_DIR` (rcgc is the root
/// package of its workspace). `cargo bench` runs bench binaries from there,
/// which is what criterion resolves a relative `CARGO_TARGET_DIR` against.
pub fn criterion_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(home) = std::env::var_os("CRITERION_HOME") {
            return PathBuf::from(home);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| root.join(dir))
            .or_else(|| cargo_metadata_target_dir(root))
            .unwrap_or_else(|| root.join("target"));
        target.join("criterion")
    })
    .clone()
}

/// `target_directory` from `cargo metadata`, using the cargo that runs us.
fn cargo_metadata_target_dir(root: &Path) -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO")?;
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let json = String::from_utf8(out.stdout).ok()?;
    let key = "\"target_directory\":\"";
    let start = json.find(key)? + key.len();
    let mut dir = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(PathBuf::from(dir)),
            '\\' => dir.push(chars.next()?),
            c => dir.push(c),
        }
    }
    None
}

/// Criterion's directory name for a group or function id (criterion 0.7's
/// `make_filename_safe`: these characters become `_`, then the name is cut to
/// 64 bytes). `+` is kept, so `Box+mimalloc` stays `Box+mimalloc`.
pub fn criterion_dir_name(id: &str) -> String {
    const MAX_LEN: usize = 64;
    let mut s: String = id
        .chars()
        .map(|c| match c {
            '?' | '"' | '/' | '\\' | '*' | '<' | '>' | ':' | '|' | '^' => '_',
            c => c,
        })
        .collect();
    if s.len() > MAX_LEN {
        let mut cut = MAX_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    if cfg!(windows) {
        s = s.trim_end().to_lowercase();
    }
    s
}

/// Path of the `estimates.json` criterion writes for `group/function`.
pub fn estimates_path(group: &str, function: &str) -> PathBuf {
    criterion_dir()
        .join(criterion_dir_name(group))
        .join(criterion_dir_name(function))
        .join("new")
        .join("estimates.json")
}

/// Extracts `mean.point_estimate` from the text of a criterion
/// `estimates.json`, without a JSON library: find the `"mean"` key, then the
/// first `"point_estimate":` after it, then read the number.
pub fn parse_mean_point_estimate(json: &str) -> Option<f64> {
    let mean = json.find("\"mean\"")?;
    let rest = &json[mean..];
    let key = "\"point_estimate\":";
    let at = rest.find(key)? + key.len();
    let num = rest[at..].trim_start();
    let end = num
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(num.len());
    num[..end].parse().ok()
}

/// A contender's mean time per iteration (ns) as criterion last wrote it, and
/// whether that file predates this run (see [`mark_run_start`]).
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    /// Mean point estimate, nanoseconds per iteration.
    pub mean_ns: f64,
    /// The file was written before [`mark_run_start`] was called.
    pub stale: bool,
}

/// Reads criterion's mean estimate for `group/function`, if it exists.
pub fn read_estimate(group: &str, function: &str) -> Option<Estimate> {
    let path = estimates_path(group, function);
    let text = std::fs::read_to_string(&path).ok()?;
    let mean_ns = parse_mean_point_estimate(&text)?;
    let stale = match (RUN_START.get(), std::fs::metadata(&path).and_then(|m| m.modified())) {
        (Some(start), Ok(modified)) => modified < *start,
        _ => false,
    };
    Some(Estimate { mean_ns, stale })
}

/// Prints a table for criterion group `group`: one row per function in
/// `names` with its mean ns per iteration and its ratio to `baseline`'s
/// (`0.62x` = takes 0.62 times as long as the baseline; lower is faster).
///
/// Does nothing unless criterion ran in benchmark mode (see
/// [`is_benchmark_mode`]), so `cargo test --benches` stays quiet.
pub fn print_ratio_table(group: &str, baseline: &str, names: &[&str]) {
    print_ratio_table_with_extras(group, baseline, names, &[]);
}

/// [`print_ratio_table`], plus `extras`: rows measured outside criterion
/// (label, ns per iteration), e.g. a reference figure from another runtime,
/// also given a ratio to the baseline.
pub fn print_ratio_table_with_extras(group: &str, baseline: &str, names: &[&str], extras: &[(&str, f64)]) {
    if !is_benchmark_mode() {
        return;
    }
    let base = read_estimate(group, baseline).map(|e| e.mean_ns);

    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut any_stale = false;
    for &name in names {
        match read_estimate(group, name) {
            Some(est) => {
                let mut label = name.to_string();
                if est.stale {
                    label.push_str(" (stale)");
                    any_stale = true;
                }
                rows.push(vec![label, format_ns(est.mean_ns), format_ratio(est.mean_ns, base)]);
            }
            None => rows.push(vec![name.to_string(), "n/a".to_string(), "n/a".to_string()]),
        }
    }
    for &(label, ns) in extras {
        rows.push(vec![label.to_string(), format_ns(ns), format_ratio(ns, base)]);
    }

    let mut notes = Vec::new();
    if base.is_none() {
        notes.push(format!("(no estimate for baseline `{baseline}`: ratios unavailable)"));
    }
    if any_stale {
        notes.push("(stale) = not measured in this run; value from an earlier run".to_string());
    }
    print_table(
        &format!("{group} (mean time per op, ratio to {baseline}; lower is faster)"),
        &["contender", "ns/op", &format!("vs {baseline}")],
        &rows,
        &notes,
    );
}

/// Prints a plain text table: `== title ==`, the header row, a rule, the
/// rows, then each note on its own line. The first column is left-aligned,
/// the others right-aligned; rows shorter than the header leave cells empty.
/// Prints unconditionally (callers check [`is_benchmark_mode`]).
pub fn print_table(title: &str, header: &[&str], rows: &[Vec<String>], notes: &[String]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, &w) in widths.iter().enumerate() {
            let cell = cells.get(i).copied().unwrap_or("");
            if i == 0 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("  {cell:>w$}"));
            }
        }
        println!("{}", out.trim_end());
    };

    println!();
    println!("== {title} ==");
    line(header);
    println!(
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1))
    );
    for row in rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for note in notes {
        println!("{note}");
    }
}

/// The benchmark-name filter given on the command line (criterion's
/// positional `FILTER` argument), if any: the first argument that is neither a
/// flag nor the value of one of criterion's flags that take a value.
///
/// Lets a bench binary skip work it does outside criterion (e.g. a single
/// timed run) when the filter excludes it.
pub fn criterion_filter() -> Option<String> {
    // Criterion 0.7's options that take a value (long and short forms).
    const WITH_VALUE: [&str; 20] = [
        "--color",
        "--colour",
        "-c",
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--baseline-lenient",
        "--format",
        "--profile-time",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

/// Whether a section named `name` that runs outside criterion should run:
/// no filter was given, or the filter is a substring of `name` (so
/// `binary_trees` selects both `binary_trees_18` and `binary_trees_20`).
pub fn filter_selects(name: &str) -> bool {
    criterion_filter().is_none_or(|filter| name.contains(filter.as_str()))
}

/// The median of `v` (sorted in place; the upper one of an even count);
/// `v` is not empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Formats nanoseconds: no decimals from 100 up, two below.
pub fn format_ns(ns: f64) -> String {
    if ns >= 100.0 {
        format!("{ns:.0}")
    } else {
        format!("{ns:.2}")
    }
}

/// Formats `ns / base` as `0.62x`, or `n/a` without a (positive) baseline.
pub fn format_ratio(ns: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}x", ns / b),
        _ => "n/a".to_string(),
    }
}

/// Runs `python3 -c script` and parses its last stdout line as a float
/// (e.g. ns per op). `None` if `python3` is not on `PATH`, fails, or prints
/// something else: reference rows from CPython are optional.
pub fn run_python_ns(script: &str) -> Option<f64> {
    let out = Command::new("python3").arg("-c").arg(script).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let stdout = String::from_utf8(out.stdout).ok()?;
    stdout.lines().last()?.trim().parse().ok()
}

//! `tokbench report` on a real database written by a real run: every file appears, the
//! tables carry the measured numbers, the suite's hardware names the rows, the output is
//! the same bytes twice, filters and bad input behave.

mod common;

use std::path::Path;

use common::*;

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn a_real_run_becomes_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    // The suite says it ran on a 4090 (it did not: this is how the hardware name reaches
    // the report, with the catalog's MSRP and TDP beside the measured speed).
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &format!(
            "hardware = \"GeForce RTX 4090\"\n{}",
            quick_suite("\"Q8_0\", \"Q4_K_M\"", "\"pp64\", \"tg16\"", "")
        ),
    );
    let db = tmp.path().join("r.db");
    run_ok(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    let rows = query(
        &db,
        "SELECT hardware, decode_tps FROM v_results WHERE test = 'tg16' AND quant = 'Q8_0'",
    );
    assert_eq!(s(&rows[0], "hardware"), "GeForce RTX 4090");
    let decode = f(&rows[0], "decode_tps").unwrap();

    let out_dir = tmp.path().join("reports");
    let out = run_ok(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("4 results →"), "{}", stderr(&out));
    for file in [
        "leaderboard.md",
        "quantization.md",
        "picks.md",
        "results.csv",
        "results.json",
        "fit.md",
        "index.html",
    ] {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    let fit = read(&out_dir, "fit.md");
    assert!(fit.contains("| synth:tiny | Q8_0 | tg16 |"), "{fit}");
    let plots: Vec<_> = std::fs::read_dir(out_dir.join("plots"))
        .unwrap()
        .flatten()
        .collect();
    assert!(plots
        .iter()
        .any(|p| p.path().extension().is_some_and(|e| e == "svg")));
    assert!(plots
        .iter()
        .any(|p| p.path().extension().is_some_and(|e| e == "png")));

    // The leaderboard row: the measured speed and the catalog's figures, derived.
    let lb = read(&out_dir, "leaderboard.md");
    let row = lb
        .lines()
        .find(|l| l.starts_with("| synth:tiny | Q8_0 | GeForce RTX 4090"))
        .unwrap_or_else(|| panic!("no 4090 row for Q8_0:\n{lb}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | Model | Quant | Hardware | VRAM GiB | MSRP | TDP W | Gen tok/s | tok/s/$1k | tok/s/100W | …
    assert_eq!(&cells[4..7], &["24", "$1,599", "450"], "{row}");
    assert!(
        cells[7].starts_with(&format!("{decode:.2}")),
        "{row} vs {decode}"
    );
    assert_eq!(cells[8], format!("{:.2}", decode / 1.599), "{row}");
    assert_eq!(cells[9], format!("{:.2}", decode / 4.5), "{row}");

    let json: serde_json::Value = serde_json::from_str(&read(&out_dir, "results.json")).unwrap();
    assert_eq!(json["schema_version"], 1);
    let html = read(&out_dir, "index.html");
    assert!(html.contains("GeForce RTX 4090") && html.contains("synth:tiny"));
    assert!(html.contains("<svg"), "plots are inlined");

    // Same database, same bytes.
    let again = tmp.path().join("again");
    run_ok(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    for file in [
        "leaderboard.md",
        "quantization.md",
        "picks.md",
        "results.csv",
        "results.json",
        "index.html",
    ] {
        assert_eq!(
            read(&out_dir, file),
            read(&again, file),
            "{file} differs between two runs"
        );
    }

    // Filters that match nothing: a typo, said so with exit 2, and no empty report written.
    let none = tmp.path().join("none");
    let out = tokbench(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--out",
        none.to_str().unwrap(),
        "--model",
        "synth:other",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("matches the filters"),
        "{}",
        stderr(&out)
    );
    assert!(
        !none.exists(),
        "nothing written for a filter that matches nothing"
    );
    let q4 = tmp.path().join("q4");
    run_ok(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--out",
        q4.to_str().unwrap(),
        "--quant",
        "Q4_K_M",
    ]);
    let lb = read(&q4, "leaderboard.md");
    assert!(lb.contains("Q4_K_M") && !lb.contains("Q8_0"), "{lb}");
}

#[test]
fn bad_report_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tokbench(&[
        "report",
        "--db",
        tmp.path().join("missing.db").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.db"), "{}", stderr(&out));
    let out = tokbench(&["report", "--since", "last week"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`last week` is not a date"),
        "{}",
        stderr(&out)
    );
    let out = tokbench(&["report", "--budget", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--budget 0"), "{}", stderr(&out));
}

/// `guide.md`: an imported Llama 3.1 8B result on an RTX 3090 (a community post) stands
/// beside its row with its source and date; rows without one show the bandwidth ceiling,
/// labelled as not measured.
#[test]
fn the_guide_shows_imported_results_and_labels_ceilings() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("g.db");
    let post = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../bench-configs/community/rtx3090-llama8b-1.md");
    let apple = post.with_file_name("m2ultra-llama7b-1.md");
    for file in [&post, &apple] {
        run_ok(&[
            "import",
            file.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ]);
    }
    let out = tmp.path().join("reports");
    run_ok(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let guide = read(&out, "guide.md");
    // A power figure says what it measures where it is not a card's board power: Apple's
    // is the whole system's published maximum.
    let board = read(&out, "leaderboard.md");
    let m2 = board
        .lines()
        .find(|l| l.contains("Apple M2 Ultra"))
        .expect("an M2 Ultra row");
    assert!(m2.contains("| 295 (system) |"), "{m2}");
    assert!(
        guide.contains("| Apple M2 Ultra | 192.0 | $6,999 | 295 (system) |"),
        "{guide}"
    );
    assert!(guide.contains("| GeForce RTX 3090 | 24.0 | $1,499 | 350 (board) |"));
    // The page carries the guide's tables too.
    let page = read(&out, "index.html");
    for model in ["Llama 3.1 405B", "Llama 3.1 70B", "Llama 3.1 8B"] {
        assert!(
            page.contains(&format!("Guide: {model} at 8192 tokens")),
            "{model}"
        );
    }
    assert!(page.contains("llama.cpp/pull/13506"));
    let section = &guide[guide.find("## Llama 3.1 8B").expect("an 8B section")..];
    let row = |name: &str| {
        section
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}"))
            .to_string()
    };
    let rtx = row("GeForce RTX 3090");
    assert!(
        rtx.contains("measured tg128") && rtx.contains("llama.cpp/pull/13506"),
        "{rtx}"
    );
    let h100 = row("H100 SXM");
    assert!(
        h100.contains("memory-bandwidth bound, not measured"),
        "{h100}"
    );
    // 405B at Q4_K_M does not fit one 24 GiB card: the 3090's 405B row offloads.
    let big =
        &guide[guide.find("## Llama 3.1 405B").unwrap()..guide.find("## Llama 3.1 70B").unwrap()];
    let rtx405 = big
        .lines()
        .find(|l| l.starts_with("| GeForce RTX 3090 |"))
        .unwrap();
    assert!(
        rtx405.contains("offload") && rtx405.contains("device + host bandwidth bound"),
        "{rtx405}"
    );
}

//! The hardware catalog: the shipped file is valid and sourced, bad files are refused with
//! the file, line and key, and names resolve the way people and drivers write them.

use std::path::Path;

use tokbench_core::catalog::{Catalog, HardwareKind, PowerBasis, ResolveError};

const SHIPPED: &str = include_str!("../../../bench-configs/hardware.toml");
const GIB: u64 = 1 << 30;

fn shipped() -> Catalog {
    Catalog::from_toml(SHIPPED, Path::new("bench-configs/hardware.toml"))
        .expect("shipped catalog is valid")
}

fn parse(text: &str) -> Result<Catalog, String> {
    Catalog::from_toml(text, Path::new("mine.toml")).map_err(|e| e.to_string())
}

const ONE: &str = r#"
[[hardware]]
name = "Test Card"
vendor = "ACME"
kind = "discrete_gpu"
aliases = ["ACME Test Card"]
memory_gib = 24
bandwidth_gbps = 1000
tdp_w = 300
msrp_usd = 1000
msrp_date = "2025-01"

[hardware.sources]
memory = "datasheet"
bandwidth = "datasheet"
tdp = "datasheet"
msrp = "launch press release"
"#;

#[test]
fn the_shipped_catalog_is_valid_and_every_figure_has_a_source() {
    let c = shipped();
    assert!(c.entries.len() >= 15, "{} entries", c.entries.len());
    for h in &c.entries {
        let s = &h.sources;
        assert_eq!(h.memory_bytes.is_some(), s.memory.is_some(), "{}", h.name);
        assert_eq!(
            h.bandwidth_bytes_per_s.is_some(),
            s.bandwidth.is_some(),
            "{}",
            h.name
        );
        assert_eq!(h.tdp_w.is_some(), s.tdp.is_some(), "{}", h.name);
        assert_eq!(h.msrp_usd.is_some(), s.msrp.is_some(), "{}", h.name);
        // A price is of a date, and every source can be looked up.
        assert_eq!(
            h.msrp_usd.is_some(),
            h.msrp_date.is_some(),
            "{}: msrp_date",
            h.name
        );
        for (figure, source) in [
            ("memory", &s.memory),
            ("bandwidth", &s.bandwidth),
            ("tdp", &s.tdp),
            ("msrp", &s.msrp),
        ] {
            if let Some(text) = source {
                assert!(
                    text.contains("https://") || text.contains("http://"),
                    "{} {figure}: {text}",
                    h.name
                );
            }
        }
    }
    // Figures as ../shared/reference/hardware-catalog.md gives them.
    let rtx4090 = c.find("GeForce RTX 4090").unwrap();
    assert_eq!(rtx4090.memory_bytes, Some(24 * GIB));
    assert_eq!(rtx4090.bandwidth_bytes_per_s, Some(1008e9));
    assert_eq!(
        (rtx4090.tdp_w, rtx4090.msrp_usd),
        (Some(450.0), Some(1599.0))
    );
    let xtx = c.find("Radeon RX 7900 XTX").unwrap();
    assert_eq!(
        xtx.bandwidth_bytes_per_s,
        Some(960e9),
        "DRAM, not Infinity Cache bandwidth"
    );
    // Unknown stays unknown: no TDP for Apple parts, no MSRP for datacenter parts.
    let m4 = c.find("Apple M4 Max").unwrap();
    assert_eq!((m4.kind, m4.tdp_w), (HardwareKind::Unified, None));
    assert_eq!(c.find("H100 SXM").unwrap().msrp_usd, None);
    // What each power figure measures: a card's board, Apple's whole system, an APU's package.
    let basis = |name: &str| c.find(name).unwrap().power_basis;
    assert_eq!(basis("GeForce RTX 4090"), Some(PowerBasis::Board));
    assert_eq!(basis("Apple M2 Ultra"), Some(PowerBasis::System));
    assert_eq!(
        basis("Ryzen AI Max+ 395 (Strix Halo)"),
        Some(PowerBasis::Package)
    );
    assert_eq!(basis("Apple M4 Max"), None);
}

#[test]
fn drivers_names_match_whole_names_only() {
    let c = shipped();
    assert_eq!(
        c.match_device("NVIDIA GeForce RTX 4090").unwrap().name,
        "GeForce RTX 4090"
    );
    assert_eq!(c.match_device("NVIDIA H200").unwrap().name, "H200 (SXM)");
    // A different part whose name starts the same gets nothing, not the wrong figures.
    assert!(c.match_device("NVIDIA H200 NVL").is_none());
    assert!(c.match_device("NVIDIA GeForce RTX 4090 D").is_none());
    // The longer whole name wins: the 3090 Ti is its own entry, never the 3090's figures.
    assert_eq!(
        c.match_device("NVIDIA GeForce RTX 3090 Ti").unwrap().name,
        "GeForce RTX 3090 Ti"
    );
    // The 8 GB and 16 GB 4060 Ti report the same name: no guess.
    assert!(c.match_device("NVIDIA GeForce RTX 4060 Ti").is_none());
}

#[test]
fn multi_device_configurations_sum_memory_power_and_price_but_not_bandwidth() {
    let c = shipped();
    for spec in [
        "2x GeForce RTX 3090",
        "2× geforce rtx 3090",
        "2 x GeForce  RTX 3090",
        "2*GeForce RTX 3090",
    ] {
        let cfg = c.resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(cfg.count, 2, "{spec}");
        assert_eq!(cfg.display_name, "2× GeForce RTX 3090");
        assert_eq!(cfg.memory_bytes, Some(48 * GIB));
        assert_eq!(cfg.tdp_w, Some(700.0));
        assert_eq!(cfg.msrp_usd, Some(2998.0));
        assert_eq!(cfg.bandwidth_bytes_per_s_per_device, Some(936e9));
    }
    assert!(matches!(
        c.resolve("0x GeForce RTX 3090"),
        Err(ResolveError::BadCount { .. })
    ));
    assert!(matches!(c.resolve("  "), Err(ResolveError::Empty)));
}

#[test]
fn an_unknown_name_lists_close_matches() {
    let c = shipped();
    let e = c.resolve("RTX 4090").unwrap_err().to_string();
    assert!(
        e.contains("unknown hardware `RTX 4090`") && e.contains("GeForce RTX 4090"),
        "{e}"
    );
    let e = c.resolve("Zorblax 9").unwrap_err().to_string();
    assert!(e.contains("nothing in the catalog is close"), "{e}");
}

#[test]
fn a_valid_file_of_ones_own_merges_with_the_shipped_one() {
    let mine = parse(ONE).unwrap();
    let h = &mine.entries[0];
    assert_eq!((h.line, h.msrp_date.as_deref()), (2, Some("2025-01")));
    let all = shipped().merge(mine).unwrap();
    assert_eq!(all.find("acme test card").unwrap().name, "Test Card");
    // The same entry twice is refused, naming both places.
    let e = all.merge(parse(ONE).unwrap()).unwrap_err().to_string();
    assert!(
        e.starts_with("mine.toml:2:") && e.contains("already used by `Test Card` at mine.toml:2"),
        "{e}"
    );
}

#[test]
fn bad_files_name_the_line_and_key() {
    let cases: [(&str, &str, &str); 10] = [
        ("tdp_w = 300", "tdp_w = 300\npower_basis = \"wall\"", "mine.toml:10: hardware `Test Card`: key `power_basis`: `wall` is not a power basis"),
        ("tdp_w = 300\n", "power_basis = \"board\"\n", "mine.toml:9: hardware `Test Card`: key `power_basis`: the basis of `tdp_w`, which is not given"),
        ("tdp_w = 300", "tdp_w = 0", "mine.toml:9: hardware `Test Card`: key `tdp_w`: 0 is not a positive number of watts; leave `tdp_w` out"),
        ("tdp = \"datasheet\"\n", "", "mine.toml:9: hardware `Test Card`: key `tdp_w` has no source"),
        ("tdp_w = 300\n", "", "mine.toml:15: hardware `Test Card`: key `sources.tdp`: a source for `tdp_w`, which is not given"),
        ("kind = \"discrete_gpu\"", "kind = \"gpu\"", "mine.toml:5: hardware `Test Card`: key `kind`:"),
        ("msrp_date = \"2025-01\"", "msrp_date = \"Jan 2025\"", "mine.toml:11: hardware `Test Card`: key `msrp_date`: `Jan 2025` is not a date"),
        ("memory_gib = 24", "memory_gib = \"24 GB\"", "mine.toml:7:"),
        ("vendor = \"ACME\"", "vendor = \" \"", "mine.toml:4: hardware `Test Card`: key `vendor`: empty"),
        ("msrp_usd = 1000", "msrp_usd = 1000\nprice = 3", "mine.toml:"),
    ];
    for (from, to, want) in cases {
        assert!(ONE.contains(from), "{from}");
        let text = ONE.replacen(from, to, 1);
        let e = parse(&text).expect_err(&format!("{to:?} must be refused"));
        assert!(e.starts_with(want), "{to:?}: {e}");
    }
    // An unknown key names itself.
    let e = parse(&ONE.replacen("msrp_usd = 1000", "msrp_usd = 1000\nprice = 3", 1)).unwrap_err();
    assert!(e.contains("price"), "{e}");
}

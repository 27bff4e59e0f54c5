//! The amd-smi JSON parser on captured output (see `fixtures/README.md`). Line numbers in
//! comments are lines of the fixture file named in the test.

use tokbench_telemetry::parse::amd_smi::{parse_metric, parse_static, AmdSmiError};

const CHANGELOG_POWER: &str = include_str!("fixtures/amd-smi/changelog_rocm6.1_metric_power.json");
const RX6600_METRIC: &str = include_str!("fixtures/amd-smi/rx6600_metric.json");
const RX6600_STATIC: &str = include_str!("fixtures/amd-smi/rx6600_static.json");

const MIB: u64 = 1024 * 1024;

#[test]
fn rx6600_metric() {
    let [gpu] = &parse_metric(RX6600_METRIC).unwrap()[..] else {
        panic!("one GPU expected");
    };
    assert_eq!(gpu.gpu, 0); // line 3
    assert_eq!(gpu.socket_power_w, Some(6.0)); // lines 59-62: 6 W
    assert_eq!(gpu.gfx_activity_pct, Some(1.0)); // lines 5-8
    assert_eq!(gpu.umc_activity_pct, Some(0.0)); // lines 9-12
    assert_eq!(gpu.temp_edge_c, Some(36.0)); // lines 224-227
    assert_eq!(gpu.temp_hotspot_c, Some(37.0)); // lines 228-231
                                                // amd-smi's MB is MiB (bytes // 2^20): lines 281-288, 8176 MB and 202 MB.
    assert_eq!(gpu.vram_total_bytes, Some(8176 * MIB));
    assert_eq!(gpu.vram_used_bytes, Some(202 * MIB));
    // lines 275-278: printed as 0.0 J on this card; passed on as printed.
    assert_eq!(gpu.energy_j, Some(0.0));
}

#[test]
fn rx6600_na_readings_stay_none() {
    // The voltages (lines 63-74) are {"value": "N/A", "unit": "mV"}; the parser does not
    // read them, but the same shape on a field it reads must give None. Swap one in.
    let text = RX6600_METRIC.replacen(
        "\"socket_power\": {\n                \"value\": 6,",
        "\"socket_power\": {\n                \"value\": \"N/A\",",
        1,
    );
    assert_ne!(text, RX6600_METRIC);
    assert_eq!(parse_metric(&text).unwrap()[0].socket_power_w, None);

    // A bare "N/A" in place of the whole reading, as `vcn_activity` entries are printed.
    let text = RX6600_METRIC.replacen(
        "\"edge\": {\n                \"value\": 36,\n                \"unit\": \"C\"\n            }",
        "\"edge\": \"N/A\"",
        1,
    );
    assert_ne!(text, RX6600_METRIC);
    assert_eq!(parse_metric(&text).unwrap()[0].temp_edge_c, None);
}

#[test]
fn changelog_power_only_query() {
    let [gpu] = &parse_metric(CHANGELOG_POWER).unwrap()[..] else {
        panic!("one GPU expected");
    };
    assert_eq!(gpu.socket_power_w, Some(10.0)); // lines 5-8
                                                // `metric -p` prints only the power section: everything else absent, so None.
    assert_eq!(gpu.gfx_activity_pct, None);
    assert_eq!(gpu.vram_total_bytes, None);
    assert_eq!(gpu.vram_used_bytes, None);
    assert_eq!(gpu.temp_edge_c, None);
    assert_eq!(gpu.energy_j, None);
}

#[test]
fn rx6600_static() {
    let [gpu] = &parse_static(RX6600_STATIC).unwrap()[..] else {
        panic!("one GPU expected");
    };
    assert_eq!(
        gpu.market_name.as_deref(),
        Some("Navi 23 [Radeon RX 6600/6600 XT") // line 5, cut short by amd-smi
    );
    assert_eq!(gpu.pci_bdf.as_deref(), Some("0000:0b:00.0")); // line 15
    assert_eq!(gpu.power_cap_max_w, Some(100.0)); // lines 31-34
    assert_eq!(gpu.power_cap_w, Some(100.0)); // lines 39-42
    assert_eq!(gpu.vram_total_bytes, Some(8176 * MIB)); // lines 101-104
    assert_eq!(gpu.driver_version.as_deref(), Some("7.0.0-3-pve")); // line 70
}

#[test]
fn gpu_data_wrapper_reads_like_the_bare_list() {
    // ROCm 7 wraps the list in {"gpu_data": [...]}. No capture of it was found, so this
    // wraps the real RX 6600 list rather than inventing one.
    let wrapped = format!("{{\"gpu_data\": {RX6600_METRIC}}}");
    assert_eq!(
        parse_metric(&wrapped).unwrap(),
        parse_metric(RX6600_METRIC).unwrap()
    );
}

#[test]
fn milliwatts_are_converted() {
    let text = CHANGELOG_POWER.replacen(
        "\"value\": 10,\n                \"unit\": \"W\"",
        "\"value\": 10500,\n                \"unit\": \"mW\"",
        1,
    );
    assert_ne!(text, CHANGELOG_POWER);
    assert_eq!(parse_metric(&text).unwrap()[0].socket_power_w, Some(10.5));
}

#[test]
fn unknown_unit_names_gpu_path_and_unit() {
    let text = CHANGELOG_POWER.replacen("\"unit\": \"W\"", "\"unit\": \"kW\"", 1);
    let err = parse_metric(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"gpu 0: `power.socket_power` has unit "kW", expected one of W, mW, uW"#
    );
}

#[test]
fn garbage_is_an_error() {
    let err = parse_metric("amd-smi: command not found\n").unwrap_err();
    assert!(matches!(err, AmdSmiError::NotJson(_)));
    assert_eq!(err.to_string(), "amd-smi output is not JSON");

    assert!(matches!(
        parse_metric(r#"{"card0": {}}"#),
        Err(AmdSmiError::UnknownShape)
    ));
    assert!(matches!(parse_metric("[]"), Err(AmdSmiError::NoGpus)));
    assert!(matches!(
        parse_metric(r#"["N/A"]"#),
        Err(AmdSmiError::GpuNotAnObject { position: 0 })
    ));
    assert!(matches!(
        parse_metric(r#"[{"power": {}}]"#),
        Err(AmdSmiError::MissingGpuIndex { position: 0 })
    ));
    let err =
        parse_metric(r#"[{"gpu": 3, "power": {"socket_power": {"value": "hot", "unit": "W"}}}]"#)
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"gpu 3: `power.socket_power` is "hot", not a reading"#
    );
}

#[test]
fn negative_memory_is_an_error() {
    let text = RX6600_METRIC.replacen("\"value\": 202,", "\"value\": -202,", 1);
    assert!(matches!(
        parse_metric(&text),
        Err(AmdSmiError::BadValue {
            gpu: 0,
            path: "mem_usage.used_vram",
            ..
        })
    ));
}

#[test]
fn oversized_input_is_refused() {
    let big = " ".repeat(tokbench_telemetry::parse::amd_smi::MAX_INPUT_BYTES + 1);
    assert!(matches!(
        parse_metric(&big),
        Err(AmdSmiError::TooLarge { .. })
    ));
}

#[test]
fn every_cut_of_a_capture_is_an_error_not_a_panic() {
    for cut in 0..RX6600_METRIC.len() - 1 {
        if RX6600_METRIC.is_char_boundary(cut) {
            assert!(parse_metric(&RX6600_METRIC[..cut]).is_err(), "cut at {cut}");
        }
    }
}

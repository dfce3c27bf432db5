//! The guest SDK mirrors the host's ABI definitions (it cannot depend on the host crate); this
//! keeps the two from drifting: feature bits, price bands and the ABI version agree.

use recostore::plugin::abi::{Context, Feature as Host, ABI_VERSION};
use recostore_plugin_sdk::{price_band, Feature as Guest, ABI_VERSION as GUEST_VERSION};

#[test]
fn feature_bits_match() {
    let pairs = [
        (Host::Similarity, Guest::Similarity),
        (Host::Lift, Guest::Lift),
        (Host::Popularity, Guest::Popularity),
        (Host::ConversionRate, Guest::ConversionRate),
        (Host::Sales, Guest::Sales),
        (Host::ReviewCount, Guest::ReviewCount),
        (Host::Rating, Guest::Rating),
        (Host::Price, Guest::Price),
        (Host::Stock, Guest::Stock),
        (Host::AgeDays, Guest::AgeDays),
        (Host::Category, Guest::Category),
        (Host::MembersOnly, Guest::MembersOnly),
        (Host::TagMatch, Guest::TagMatch),
    ];
    assert_eq!(
        pairs.len(),
        Host::ALL.len(),
        "every host feature has a guest twin"
    );
    for (h, g) in pairs {
        assert_eq!(h as u8, g as u8, "{}", h.name());
        assert_eq!(h.bit() as i64, recostore_plugin_sdk::mask(&[g]));
    }
    assert_eq!(ABI_VERSION, GUEST_VERSION);
}

#[test]
fn price_bands_match() {
    for p in [
        0.0, 0.5, 4.99, 5.0, 9.99, 10.0, 19.9, 20.0, 49.0, 50.0, 99.0, 100.0, 199.0, 200.0, 499.0,
        500.0, 1e6,
    ] {
        assert_eq!(Context::band_code(p), price_band(p), "price {p}");
    }
}

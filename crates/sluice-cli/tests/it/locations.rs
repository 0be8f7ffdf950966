//! Locations as users write them in sluice.toml.

use crate::common::*;

#[test]
fn a_warehouse_with_a_trailing_slash_works_end_to_end() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("wh")).unwrap();
    let warehouse = format!("file://{}/", env.path("wh").display());
    let config = format!(
        "[catalog]\ntype = \"sql\"\nuri = \".sluice/catalog.db\"\nwarehouse = \"{warehouse}\"\n\n[journal]\nlocation = \".sluice/journal\"\n"
    );
    std::fs::write(env.path("sluice.toml"), config).unwrap();
    write(&env.path("raw/a.parquet"), &events(0..10, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"], "published", "{report}");
    assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
    // No empty path segment in what was written.
    let files = walk(&env.path("wh"));
    assert!(
        files
            .iter()
            .any(|p| p.display().to_string().contains("/wh/ns/events/")),
        "{files:?}"
    );
}

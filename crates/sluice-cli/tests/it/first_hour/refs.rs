//! Branches and tags: deleting one kind leaves the other alone.

use super::*;

fn ref_names(env: &Env, kind: &str) -> Vec<String> {
    let (code, refs) = env.json(&[kind, "list", "ns.events"]);
    assert_eq!(code, 0, "{refs}");
    refs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tag_delete_leaves_branches_alone_and_branch_delete_leaves_tags_alone() {
    let env = seeded();
    assert!(
        env.sluice(&["branch", "create", "ns.events", "dev"])
            .status
            .success()
    );
    assert!(
        env.sluice(&["tag", "create", "ns.events", "t1"])
            .status
            .success()
    );

    let out = env.sluice(&["tag", "delete", "ns.events", "dev"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("`dev` in table ns.events is a branch, not a tag")
            && err.contains("sluice branch delete ns.events dev"),
        "{err}"
    );
    let out = env.sluice(&["branch", "delete", "ns.events", "t1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is a tag, not a branch") && err.contains("sluice tag delete ns.events t1"),
        "{err}"
    );
    assert_eq!(ref_names(&env, "branch"), ["dev", "main"]);
    assert_eq!(ref_names(&env, "tag"), ["t1"]);

    let out = env.sluice(&["tag", "delete", "ns.events", "t1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted tag t1 of ns.events"));
    let out = env.sluice(&["branch", "delete", "ns.events", "dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ref_names(&env, "branch"), ["main"]);
    assert!(ref_names(&env, "tag").is_empty());
}

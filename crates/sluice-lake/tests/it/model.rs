//! Random sequences of ref operations against an in-memory model of refs and row sets.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use sluice_lake::{Error, RefKind, RefMove, RefName, RefSpec};

use crate::common::*;

const BRANCHES: [&str; 3] = ["main", "b1", "b2"];
const TAGS: [&str; 2] = ["t1", "t2"];

#[derive(Clone, Debug)]
enum Op {
    Branch { name: usize, from: usize },
    Tag { name: usize, from: usize },
    Append { branch: usize, rows: i64 },
    FastForward { target: usize, source: usize },
    Publish { target: usize, source: usize },
    Rollback { branch: usize, back: usize },
    Delete { name: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..5usize).prop_map(|(name, from)| Op::Branch { name, from }),
        (0..2usize, 0..3usize).prop_map(|(name, from)| Op::Tag { name, from }),
        (0..3usize, 1..4i64).prop_map(|(branch, rows)| Op::Append { branch, rows }),
        (0..3usize, 0..3usize).prop_map(|(target, source)| Op::FastForward { target, source }),
        (0..3usize, 0..3usize).prop_map(|(target, source)| Op::Publish { target, source }),
        (0..3usize, 0..3usize).prop_map(|(branch, back)| Op::Rollback { branch, back }),
        (0..5usize, Just(0)).prop_map(|(name, _)| Op::Delete { name }),
    ]
}

fn ref_name(i: usize) -> &'static str {
    if i < 3 { BRANCHES[i] } else { TAGS[i - 3] }
}

/// The model: each ref points at a snapshot; each snapshot has a parent and a set of rows.
#[derive(Default)]
struct Model {
    refs: BTreeMap<String, (bool, i64)>, // name -> (is_branch, snapshot)
    parent: HashMap<i64, Option<i64>>,
    rows: HashMap<i64, Vec<i64>>,
    next_row: i64,
}

impl Model {
    fn ancestry(&self, mut id: Option<i64>) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(s) = id {
            out.push(s);
            id = self.parent.get(&s).copied().flatten();
        }
        out
    }
    fn head(&self, name: &str) -> Option<i64> {
        self.refs.get(name).map(|r| r.1)
    }
}

async fn run(ops: Vec<Op>) {
    let t = new_lake().await;
    let lake = &t.lake;
    let table = &t.table;
    // Start with one snapshot on main so that every ref operation has something to work on.
    let first = lake
        .append_batches(table, &RefName::main(), &[batch(0..1)], Default::default())
        .await
        .unwrap();
    let mut m = Model {
        next_row: 1,
        ..Default::default()
    };
    m.refs.insert("main".into(), (true, first.snapshot_id));
    m.parent.insert(first.snapshot_id, None);
    m.rows.insert(first.snapshot_id, vec![0]);

    for op in ops {
        match op {
            Op::Branch { name, from } => {
                let (name, from) = (BRANCHES[name], ref_name(from));
                let result = lake
                    .create_branch(
                        table,
                        &RefName::new(name).unwrap(),
                        &RefSpec::parse(from).unwrap(),
                    )
                    .await;
                match (m.refs.contains_key(name), m.head(from)) {
                    (false, Some(s)) => {
                        assert_eq!(result.unwrap(), s);
                        m.refs.insert(name.into(), (true, s));
                    }
                    (true, _) => assert!(
                        matches!(result, Err(Error::RefAlreadyExists { .. })),
                        "{result:?}"
                    ),
                    (false, None) => assert!(
                        matches!(result, Err(Error::RefNotFound { .. })),
                        "{result:?}"
                    ),
                }
            }
            Op::Tag { name, from } => {
                let (name, from) = (TAGS[name], BRANCHES[from]);
                let result = lake
                    .create_tag(
                        table,
                        &RefName::new(name).unwrap(),
                        &RefSpec::parse(from).unwrap(),
                    )
                    .await;
                match (m.refs.contains_key(name), m.head(from)) {
                    (false, Some(s)) => {
                        assert_eq!(result.unwrap(), s);
                        m.refs.insert(name.into(), (false, s));
                    }
                    _ => assert!(result.is_err()),
                }
            }
            Op::Append { branch, rows } => {
                let name = BRANCHES[branch];
                let start = m.next_row;
                m.next_row += rows;
                let result = lake
                    .append_batches(
                        table,
                        &RefName::new(name).unwrap(),
                        &[batch(start..start + rows)],
                        Default::default(),
                    )
                    .await;
                match m.head(name) {
                    Some(parent) => {
                        let s = result.unwrap().snapshot_id;
                        let mut r = m.rows[&parent].clone();
                        r.extend(start..start + rows);
                        m.parent.insert(s, Some(parent));
                        m.rows.insert(s, r);
                        m.refs.insert(name.into(), (true, s));
                    }
                    None => assert!(
                        matches!(result, Err(Error::BranchNotFound { .. })),
                        "{result:?}"
                    ),
                }
            }
            Op::FastForward { target, source } | Op::Publish { target, source }
                if target == source =>
            {
                let _ = (target, source);
            }
            Op::FastForward { target, source } => {
                let (tn, sn) = (BRANCHES[target], BRANCHES[source]);
                let result = lake
                    .fast_forward(
                        table,
                        RefMove {
                            source: &RefName::new(sn).unwrap(),
                            target: &RefName::new(tn).unwrap(),
                        },
                    )
                    .await;
                match (m.head(tn), m.head(sn)) {
                    (Some(th), Some(sh)) if m.ancestry(Some(sh)).contains(&th) => {
                        assert_eq!(result.unwrap().snapshot_id, sh);
                        m.refs.insert(tn.into(), (true, sh));
                    }
                    _ => assert!(result.is_err(), "{result:?}"),
                }
            }
            Op::Publish { target, source } => {
                let (tn, sn) = (BRANCHES[target], BRANCHES[source]);
                let result = lake
                    .publish(
                        table,
                        RefMove {
                            source: &RefName::new(sn).unwrap(),
                            target: &RefName::new(tn).unwrap(),
                        },
                        Default::default(),
                    )
                    .await;
                match (m.head(tn), m.head(sn)) {
                    (Some(th), Some(sh)) => {
                        let outcome = result.unwrap();
                        if m.ancestry(Some(sh)).contains(&th) {
                            assert_eq!(outcome.snapshot_id, sh);
                        } else {
                            // Rebase: target rows plus what the source added since the fork.
                            let target_anc = m.ancestry(Some(th));
                            let fork = m
                                .ancestry(Some(sh))
                                .into_iter()
                                .find(|s| target_anc.contains(s));
                            let fork_rows = fork.map(|f| m.rows[&f].clone()).unwrap_or_default();
                            let mut r = m.rows[&th].clone();
                            r.extend(m.rows[&sh].iter().filter(|x| !fork_rows.contains(x)));
                            m.parent.insert(outcome.snapshot_id, Some(th));
                            m.rows.insert(outcome.snapshot_id, r);
                        }
                        m.refs.insert(tn.into(), (true, outcome.snapshot_id));
                    }
                    _ => assert!(result.is_err(), "{result:?}"),
                }
            }
            Op::Rollback { branch, back } => {
                let name = BRANCHES[branch];
                let Some(head) = m.head(name) else { continue };
                let anc = m.ancestry(Some(head));
                let to = anc[back.min(anc.len() - 1)];
                let result = lake
                    .rollback(table, &RefName::new(name).unwrap(), &RefSpec::Snapshot(to))
                    .await;
                assert_eq!(result.unwrap(), to);
                m.refs.insert(name.into(), (true, to));
            }
            Op::Delete { name } => {
                let name = ref_name(name);
                let kind = match m.refs.get(name) {
                    Some((false, _)) => RefKind::Tag,
                    _ => RefKind::Branch,
                };
                let result = lake
                    .delete_ref(table, &RefName::new(name).unwrap(), kind)
                    .await;
                if name == "main" || !m.refs.contains_key(name) {
                    assert!(result.is_err());
                } else {
                    result.unwrap();
                    m.refs.remove(name);
                }
            }
        }
        // Every ref points where the model says and holds exactly the model's rows.
        let actual = ref_state(lake, table).await;
        let expected: HashMap<String, i64> = m.refs.iter().map(|(k, v)| (k.clone(), v.1)).collect();
        assert_eq!(actual, expected);
        for (name, (_, snapshot)) in &m.refs {
            let mut want = m.rows[snapshot].clone();
            want.sort_unstable();
            assert_eq!(ids(lake, table, name).await, want, "rows of {name}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, max_shrink_iters: 20, ..ProptestConfig::default() })]
    #[test]
    fn ref_operations_match_the_model(ops in proptest::collection::vec(op(), 1..10)) {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run(ops));
    }
}

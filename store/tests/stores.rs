//! The two stores behave alike: the same checks run on a SQLite file (always) and on a
//! throwaway PostgreSQL cluster (when the server is installed; required in CI). Claims are
//! exclusive across connections and threads, a silent or dead worker's member is handed over,
//! results are recorded once, failed members are asked again, and a study is replaced whole.

#[path = "support/postgres.rs"]
mod pg;

use std::collections::BTreeSet;
use std::path::PathBuf;

use store::{NewMember, NewStudy, Outcome, Status, Storage, Store};

fn sqlite(name: &str) -> (Storage, PathBuf) {
    let dir = std::env::temp_dir().join(format!("qnas-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (Storage::Sqlite(dir.join("study.db")), dir)
}

fn members(n: usize, tag: &str) -> Vec<NewMember> {
    (0..n)
        .map(|i| NewMember {
            key: format!("{tag}{i}"),
            arch: format!("{{\"m\":{i}}}"),
            origin: "random".into(),
        })
        .collect()
}

fn new_study(store: &mut dyn Store) {
    store
        .create(&NewStudy {
            fingerprint: "f00d",
            settings: "{\"budget\":8}",
            state: "{\"stage\":0}",
        })
        .unwrap();
}

/// Every check, on one storage.
fn behaves(storage: &Storage) {
    let mut s = storage.open("digits").unwrap();
    assert_eq!(s.study().unwrap(), None);
    new_study(s.as_mut());
    let study = s.study().unwrap().unwrap();
    assert_eq!(
        (study.name.as_str(), study.fingerprint.as_str()),
        ("digits", "f00d")
    );
    assert_eq!(study.report, None);

    // asks get consecutive indices; asking a key again changes nothing
    s.ask(&members(3, "a")).unwrap();
    s.ask(&members(5, "a")).unwrap();
    let all = s.all_members().unwrap();
    assert_eq!(
        all.iter().map(|m| m.idx).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(all.iter().all(|m| m.status == Status::Asked));

    // claims take the lowest indices first and never the same member twice
    let c1 = s.claim("w1@h:1", 2, 60_000, &[]).unwrap();
    assert_eq!(c1.iter().map(|m| m.idx).collect::<Vec<_>>(), [0, 1]);
    assert!(
        c1.iter()
            .all(|m| m.status == Status::Running && m.attempts == 1)
    );
    let mut other = storage.open("digits").unwrap();
    let c2 = other.claim("w2@h:2", 10, 60_000, &[]).unwrap();
    assert_eq!(c2.iter().map(|m| m.idx).collect::<Vec<_>>(), [2, 3, 4]);
    assert!(other.claim("w3@h:3", 10, 60_000, &[]).unwrap().is_empty());
    assert_eq!(s.running_workers().unwrap(), ["w1@h:1", "w2@h:2"]);

    // results are recorded once
    let o = Outcome {
        correct: 7,
        total: 10,
    };
    assert!(s.complete("w1@h:1", 0, o).unwrap());
    assert!(!other.complete("w2@h:2", 0, o).unwrap());
    let m0 = &s.members(&["a0".to_string()]).unwrap()[0];
    assert_eq!((m0.status, m0.outcome), (Status::Done, Some(o)));

    // a dead worker's member goes at once; a silent one's after the stale time
    let given = other
        .claim("w3@h:3", 10, 60_000, &["w1@h:1".into()])
        .unwrap();
    assert_eq!(given.iter().map(|m| m.idx).collect::<Vec<_>>(), [1]);
    assert_eq!(given[0].attempts, 2);
    std::thread::sleep(std::time::Duration::from_millis(30));
    other.heartbeat("w2@h:2", &[2]).unwrap();
    let stale = s.claim("w4@h:4", 10, 20, &[]).unwrap();
    let taken: BTreeSet<i64> = stale.iter().map(|m| m.idx).collect();
    assert!(taken.contains(&3) && taken.contains(&4), "{taken:?}");
    assert!(
        !taken.contains(&2),
        "a member with a fresh heartbeat was handed over"
    );

    // failures are kept until the member is asked again; release hands members back
    s.fail("w4@h:4", 3, "out of memory").unwrap();
    s.release("w4@h:4", &[4]).unwrap();
    let m = s.members(&["a3".into(), "a4".into()]).unwrap();
    assert_eq!(m[0].status, Status::Failed);
    assert_eq!(m[0].error.as_deref(), Some("out of memory"));
    assert_eq!((m[1].status, m[1].worker.as_deref()), (Status::Asked, None));
    s.ask(&members(5, "a")).unwrap();
    assert_eq!(s.members(&["a3".into()]).unwrap()[0].status, Status::Asked);

    // state and rows, saved together; rows already there are kept
    s.save("{\"stage\":1}", 0, &["r0".into(), "r1".into()])
        .unwrap();
    s.save("{\"stage\":2}", 1, &["x".into(), "r2".into()])
        .unwrap();
    assert_eq!(s.rows().unwrap(), ["r0", "r1", "r2"]);
    assert_eq!(s.study().unwrap().unwrap().state, "{\"stage\":2}");
    s.finish("{\"front\":[]}").unwrap();
    assert_eq!(
        s.study().unwrap().unwrap().report.as_deref(),
        Some("{\"front\":[]}")
    );

    // another study in the same store is apart; creating a study again replaces it whole
    let mut b = storage.open("mnist").unwrap();
    assert_eq!(b.study().unwrap(), None);
    new_study(b.as_mut());
    b.ask(&members(2, "b")).unwrap();
    assert_eq!(b.all_members().unwrap().len(), 2);
    assert_eq!(s.all_members().unwrap().len(), 5);
    new_study(s.as_mut());
    assert!(s.all_members().unwrap().is_empty());
    assert!(s.rows().unwrap().is_empty());
    assert_eq!(b.all_members().unwrap().len(), 2);
}

/// Many threads, each with its own connection, claim from one study: every member is claimed
/// exactly once.
fn claims_are_exclusive(storage: &Storage) {
    let mut s = storage.open("race").unwrap();
    new_study(s.as_mut());
    s.ask(&members(200, "m")).unwrap();
    let handles: Vec<_> = (0..6)
        .map(|w| {
            let storage = storage.clone();
            std::thread::spawn(move || {
                let mut s = storage.open("race").unwrap();
                let id = format!("w{w}@h:{w}");
                let mut got = Vec::new();
                loop {
                    let c = s.claim(&id, 3, 60_000, &[]).unwrap();
                    if c.is_empty() {
                        break;
                    }
                    for m in c {
                        s.complete(
                            &id,
                            m.idx,
                            Outcome {
                                correct: 1,
                                total: 1,
                            },
                        )
                        .unwrap();
                        got.push(m.idx);
                    }
                }
                got
            })
        })
        .collect();
    let mut all: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (0..200).collect::<Vec<i64>>());
    let done = s.all_members().unwrap();
    assert!(
        done.iter()
            .all(|m| m.status == Status::Done && m.attempts == 1)
    );
}

#[test]
fn sqlite_store() {
    let (storage, dir) = sqlite("behaves");
    behaves(&storage);
    claims_are_exclusive(&storage);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn postgres_store() {
    let Some(cluster) = pg::Cluster::start("store") else {
        return;
    };
    let storage = Storage::parse(&cluster.url).unwrap();
    behaves(&storage);
    claims_are_exclusive(&storage);
}

#[test]
fn a_damaged_sqlite_file_is_an_error_naming_it() {
    let (storage, dir) = sqlite("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("study.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let e = storage
        .open("digits")
        .err()
        .expect("a damaged file is refused");
    assert!(e.is_invalid_input(), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unreachable_database_is_a_failure_naming_it_without_its_password() {
    let s = Storage::parse("postgres://qnas:secret@127.0.0.1:1/none?connect_timeout=2").unwrap();
    let e = s.open("digits").err().expect("nothing listens on port 1");
    assert!(!e.is_invalid_input(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("postgres://qnas:***@127.0.0.1:1/none"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}

/// Processes that open a new study file at the same moment (a search and the workers started
/// beside it) all get it, and none of them removes the file another one is setting up or using:
/// rounds of 8 threads opening the same fresh file at once, each then writing to it.
#[test]
fn opening_a_new_sqlite_file_at_once_from_many_threads_works_for_all() {
    for round in 0..30 {
        let (storage, dir) = sqlite(&format!("race{round}"));
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            let opened: Vec<_> = (0..8)
                .map(|t| {
                    let (storage, barrier) = (&storage, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let mut s = storage.open("digits")?;
                        if t == 0 {
                            new_study(s.as_mut());
                        }
                        s.study().map(|_| ())
                    })
                })
                .collect();
            for (t, h) in opened.into_iter().enumerate() {
                h.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}, thread {t}: {e}"));
            }
        });
        let mut s = storage.open("digits").unwrap();
        assert!(
            s.study().unwrap().is_some(),
            "round {round}: the study is kept"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
}

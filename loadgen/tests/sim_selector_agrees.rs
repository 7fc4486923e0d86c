//! The simulator's label-selector parser and the engine's (`kcache::selector`)
//! are two independent implementations of apimachinery's `labels.Parse`: for
//! random selector strings and label sets they must agree on which selectors
//! parse and on which label sets each one matches.
//!
//! The simulator follows apimachinery in a few corners where the engine does
//! not; inputs that reach them are left out (see [`outside_known_divergences`])
//! so that every other disagreement fails this test.

use std::collections::BTreeMap;

use kcache::selector::LabelSelector as EngineSelector;
use kcache_loadgen::sim::LabelSelector as SimSelector;
use proptest::prelude::*;

/// Whether `s` avoids the corners where the simulator follows apimachinery and
/// the engine does not:
/// * `in` and `notin` where a key or a value is expected (apimachinery reads
///   them as identifiers there: `in=x`, `a=in`, `a in (in)`, `a,!in`);
/// * the empty set `()`, which apimachinery reads as the set holding the empty
///   value;
/// * whitespace other than space, tab, CR and LF, and NUL bytes, which
///   apimachinery's byte lexer treats differently from Unicode whitespace;
/// * key prefixes with upper-case letters or a dot-separated part longer than
///   63 bytes (apimachinery's prefix is a lowercase DNS subdomain of at most
///   253 bytes).
fn outside_known_divergences(s: &str) -> bool {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    if s.chars().any(|c| c == '\0' || (c.is_whitespace() && !blank(c))) {
        return false;
    }
    let special = |c: char| matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<');
    // Tokens as both lexers split them (words and single operator characters).
    let mut tokens: Vec<&str> = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if blank(c) {
            rest = &rest[1..];
        } else if special(c) {
            tokens.push(&rest[..1]);
            rest = &rest[1..];
        } else {
            let end = rest
                .find(|c: char| blank(c) || special(c))
                .unwrap_or(rest.len());
            tokens.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    for (i, t) in tokens.iter().enumerate() {
        let after_word = i > 0 && !tokens[i - 1].starts_with(special);
        if matches!(*t, "in" | "notin") && !after_word {
            return false;
        }
        if *t == "(" && tokens.get(i + 1) == Some(&")") {
            return false;
        }
        if let Some((prefix, _)) = t.split_once('/')
            && (prefix.bytes().any(|b| b.is_ascii_uppercase()) || prefix.split('.').any(|l| l.len() > 63))
        {
            return false;
        }
    }
    true
}

const KEYS: &[&str] = &[
    "app", "tier", "a", "b.c", "x-y_z", "Upper", "example.com/app", "k8s.io/x", "a-b.c/d", "-bad",
    "bad-", "a/b/c", "/a", "a/", "a_/b", "é",
];
const VALUES: &[&str] = &[
    "", "web", "api", "3", "10", "-1", "+2", "007", "a.b", "-x", "x-", "Web_1", "9223372036854775808", "x y",
];
const OPERATORS: &[&str] = &["", "!", "=", "==", "!=", " in ", " notin ", ">", "<", " ", "=>", "!!", "\t==\n"];

fn long_name(n: usize) -> String {
    "a".repeat(n)
}

/// A key, valid or not, including names at and just over the length limit.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => prop::sample::select(vec![63usize, 64]).prop_map(long_name),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(VALUES).prop_map(str::to_owned),
        1 => prop::sample::select(vec![63usize, 64]).prop_map(long_name),
    ]
}

/// One requirement built from pieces: mostly well-formed, sometimes not.
fn requirement() -> impl Strategy<Value = String> {
    (
        key(),
        prop::sample::select(OPERATORS),
        prop::collection::vec(value(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(key, op, values, spaced)| match op {
            "!" => format!("!{key}"),
            " in " | " notin " => {
                let sep = if spaced { ", " } else { "," };
                format!("{key}{op}({})", values.join(sep))
            }
            "" => key,
            _ => format!("{key}{op}{}", values.first().map_or("", String::as_str)),
        })
}

/// A selector: requirements joined by commas (sometimes doubled or trailing),
/// or random text over the selector alphabet.
fn selector() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::collection::vec(requirement(), 0..4), prop::sample::select(vec![",", ", ", ",,", " , "]))
            .prop_map(|(reqs, sep)| reqs.join(sep)),
        1 => (prop::collection::vec(requirement(), 1..3), prop::sample::select(vec![",", ")", " x", "("]))
            .prop_map(|(reqs, tail)| format!("{}{tail}", reqs.join(","))),
        3 => "[a-z0-9=!(),<> ._/-]{0,30}",
        1 => "[a-pA-P0-9=!()<>, .\t\n_/+é-]{0,20}",
    ]
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(&KEYS[..9]).prop_map(str::to_owned),
        prop::sample::select(&VALUES[..13]).prop_map(str::to_owned),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, max_global_rejects: 100_000, ..ProptestConfig::default() })]

    /// Both parsers accept the same selectors, and a selector both accept
    /// matches the same label sets.
    #[test]
    fn the_simulator_and_the_engine_read_selectors_alike(
        s in selector().prop_filter("a known divergence", |s| outside_known_divergences(s)),
        sets in prop::collection::vec(labels(), 1..6),
    ) {
        let sim = SimSelector::parse(&s);
        let engine = s.parse::<EngineSelector>();
        prop_assert_eq!(
            sim.is_ok(),
            engine.is_ok(),
            "{:?}: simulator {:?}, engine {:?}",
            s,
            sim.as_ref().err().map(|e| &e.message),
            engine.as_ref().err().map(|e| &e.reason)
        );
        if let (Ok(sim), Ok(engine)) = (sim, engine) {
            prop_assert_eq!(sim.is_empty(), engine.is_empty(), "{:?}", s);
            for set in &sets {
                let pairs: Vec<(String, String)> = set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(
                    sim.matches(&pairs),
                    engine.matches_labels(|k| set.get(k).map(String::as_str)),
                    "{:?} on {:?}",
                    s,
                    set
                );
            }
        }
    }
}

/// The generators reach both outcomes and every kind of requirement, so the
/// property above compares more than empty selectors and parse errors.
#[test]
fn the_comparison_covers_accepted_rejected_and_matching_selectors() {
    for s in [
        "app=web",
        "app==web,tier!=db",
        "app in (web, api),tier notin (db)",
        "a,!b.c",
        "example.com/app>2,x-y_z<10",
        "app in (,web)",
    ] {
        assert!(outside_known_divergences(s), "{s}");
        assert!(SimSelector::parse(s).is_ok() && s.parse::<EngineSelector>().is_ok(), "{s}");
    }
    for s in ["in=x", "a=in", "a in (in)", "a,!notin", "a in ( )", "Ex.com/a", "a=b\u{a0}", "a=\0", "a=\u{b}"] {
        assert!(!outside_known_divergences(s), "{s}");
    }
    for s in ["a in (x", "x>y", "-bad", "a,,b", "é=x", "a=\u{1}"] {
        assert!(outside_known_divergences(s), "{s}");
        assert!(SimSelector::parse(s).is_err() && s.parse::<EngineSelector>().is_err(), "{s}");
    }
}

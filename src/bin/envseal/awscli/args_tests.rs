//! The drop-in's argument parsing, checked against what aws-encryption-cli
//! 4.3 (Python 3.11's argparse and its own checks) says for each line.

use super::*;

fn p(line: &str) -> Result<AwsCliArgs, Stop> {
    parse(&line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
}

fn usage(line: &str) -> String {
    match p(line) {
        Err(Stop::Usage(m)) => m,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn argparse_forms() {
    let a =
        p("-eS -ihello.txt --out=o -wkey=K key=L -w key=M -c a=1 b=2 --suffix -vv -q --wrap key=N").unwrap();
    assert_eq!(a.action, Some(Action::Encrypt));
    assert!(a.suppress_metadata && a.quiet);
    assert_eq!(
        (a.input.as_deref(), a.output.as_deref()),
        (Some("hello.txt"), Some("o"))
    );
    assert_eq!(
        a.wrapping_keys,
        [vec!["key=K", "key=L"], vec!["key=M"], vec!["key=N"]]
    );
    assert_eq!(a.encryption_context.unwrap(), ["a=1", "b=2"]);
    assert_eq!((a.suffix.as_deref(), a.verbosity), (Some(""), 2));
    let a = p("-d -i - -o - -S -w discovery=true --suffix .x --frame-length -5").unwrap();
    assert_eq!(
        (a.input.as_deref(), a.suffix.as_deref(), a.frame_length),
        (Some("-"), Some(".x"), Some(-5))
    );
}

#[test]
fn argparse_errors_in_its_order() {
    assert_eq!(
        usage(""),
        "the following arguments are required: -w/--wrapping-keys, -i/--input, -o/--output"
    );
    assert_eq!(
        usage("-i a -o b -w key=K"),
        "one of the arguments --version -e/--encrypt -d/--decrypt --decrypt-unsigned is required"
    );
    assert_eq!(
        usage("-e -i a -o b -w key=K"),
        "one of the arguments -S/--suppress-metadata --metadata-output is required"
    );
    assert_eq!(
        usage("-e -d"),
        "argument -d/--decrypt: not allowed with argument -e/--encrypt"
    );
    assert_eq!(
        usage("-S --metadata-output m"),
        "argument --metadata-output: not allowed with argument -S/--suppress-metadata"
    );
    assert_eq!(
        usage("-i a --input b"),
        "--input argument may not be specified more than once"
    );
    assert_eq!(
        usage("--enc"),
        "ambiguous option: --enc could match --encrypt, --encode, --encryption-context"
    );
    assert_eq!(
        usage("-e -S -i a -o b extra -w key=K"),
        "unrecognized arguments: extra"
    );
    assert_eq!(
        usage("-w"),
        "argument -w/--wrapping-keys: expected at least one argument"
    );
    assert_eq!(
        usage("--frame-length 0x10"),
        "argument --frame-length: invalid int value: '0x10'"
    );
    assert!(usage("--algorithm FOO").starts_with("argument --algorithm: invalid choice: 'FOO'"));
    assert_eq!(p("--version -e").unwrap_err(), Stop::Version);
    assert_eq!(
        usage("-e --version"),
        "argument --version: not allowed with argument -e/--encrypt"
    );
    assert_eq!(p("-h").unwrap_err(), Stop::Help);
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn wrapping_key_checks() {
    let u = |s: &str, a| match wrapping_keys(&words(s), a) {
        Err(KeysError::Usage(m)) => m,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(
        u("key", Action::Encrypt),
        "Argument parameter must follow the format \"key=value\""
    );
    assert_eq!(
        u("provider=aws-kms", Action::Encrypt),
        "At least one \"key\" must be provided for each wrapping key provider configuration"
    );
    assert_eq!(
        u("key=K discovery=true", Action::Encrypt),
        "Discovery attributes are supported only on decryption for AWS KMS keys"
    );
    assert_eq!(u("discovery-account=1", Action::Decrypt), "Discovery-account and discovery-partition are valid only when the discovery attribute is set to true");
    assert_eq!(
        u("discovery=maybe", Action::Decrypt),
        "Value maybe could not be parsed as true or false"
    );
    assert_eq!(
        u("discovery=true discovery-account=1", Action::Decrypt),
        "When specifying discovery-account, you must also specify discovery-partition"
    );
    assert_eq!(
        u("discovery=yes key=K", Action::Decrypt),
        "If discovery is true (enabled), you cannot specify wrapping keys"
    );
    assert_eq!(
        u("discovery=false", Action::Decrypt),
        "When discovery is false (disabled), you must specify at least one wrapping key"
    );
    assert_eq!(
        wrapping_keys(&words("provider=foo key=1"), Action::Decrypt),
        Err(KeysError::Provider(
            "Requested master key provider not found: \"foo\"".into()
        ))
    );
    let g = wrapping_keys(
        &words(
            "discovery=T discovery-partition=aws discovery-account=1 discovery-account=2 region=us-west-2",
        ),
        Action::Decrypt,
    )
    .unwrap();
    assert!(g.discovery && g.keys.is_empty());
    assert_eq!(
        (g.accounts, g.partition, g.region),
        (
            vec!["1".to_owned(), "2".to_owned()],
            Some("aws".to_owned()),
            Some("us-west-2".to_owned())
        )
    );
    let g = wrapping_keys(&words("key=a key=b provider=aws-kms"), Action::Encrypt).unwrap();
    assert_eq!(g.keys, ["a", "b"]);
}

#[test]
fn caching_and_context_checks() {
    assert_eq!(
        caching(&words("capacity=10")),
        Err(Stop::Usage(
            "If enabling caching, both \"capacity\" and \"max_age\" are required".into()
        ))
    );
    assert_eq!(
        caching(&words("capacity=10 max_age=1 foo=2")),
        Err(Stop::Usage("Invalid caching configuration key: \"foo\"".into()))
    );
    let c = caching(&words(
        "capacity=10 max_age=60.0 capacity=20 max_messages_encrypted=15",
    ))
    .unwrap();
    assert_eq!(
        (
            c.capacity.as_str(),
            c.max_age.as_str(),
            c.max_messages_encrypted.as_deref()
        ),
        ("10", "60.0", Some("15"))
    );
    let (pairs, keys) = context(&words("a=1 a=2 b=x=y k"), Action::Decrypt).unwrap();
    assert_eq!(
        pairs.into_iter().collect::<Vec<_>>(),
        [("a".into(), "1".into()), ("b".into(), "x=y".into())]
    );
    assert_eq!(keys, ["k"]);
    assert!(context(&words("k"), Action::Encrypt).is_err());
}

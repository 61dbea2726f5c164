//! RFC 7606 table: one hand-built UPDATE per class of malformation, the action the decoder must
//! choose, and the NOTIFICATION (code, subcode, data) the error maps to. For treat-as-withdraw
//! rows the prefixes of the UPDATE must still come back, to be withdrawn.

mod rfc7606_rows;

use rfc7606_rows::*;

#[test]
fn rfc7606_table() {
    let mut failures = Vec::new();
    for r in rows() {
        let got = Message::decode(&r.msg, &r.cx);
        let (action, err, update) = match &got {
            Err(e) => (Some(e.action), Some(e.clone()), None),
            Ok(Message::Update(u)) => {
                let strongest = u.errors.iter().max_by_key(|e| e.action).cloned();
                (u.action(), strongest, Some(u))
            }
            Ok(other) => panic!("{}: not an UPDATE: {other:?}", r.class),
        };
        if action != r.action {
            failures.push(format!(
                "{}: action {action:?}, want {:?} ({got:?})",
                r.class, r.action
            ));
            continue;
        }
        let Some(err) = err else { continue };
        let notification =
            Message::Notification(Notification::from(&err)).to_bytes(&EncodeCx::default());
        if notification[19..] != *r.notification {
            failures.push(format!(
                "{}: notification {:?}, want {:?}",
                r.class,
                &notification[19..],
                r.notification
            ));
        }
        if err.attr_type != r.attr_type {
            failures.push(format!(
                "{}: attribute type {:?}, want {:?}",
                r.class, err.attr_type, r.attr_type
            ));
        }
        if err.offset < 19 || err.offset >= r.msg.len() {
            failures.push(format!(
                "{}: offset {} outside the message body",
                r.class, err.offset
            ));
        }
        if let Some(u) = update {
            match r.action {
                // the prefixes still come back, to be withdrawn
                Some(ErrorAction::TreatAsWithdraw) => {
                    let w = u.treat_as_withdraw();
                    if w.ipv4.len() + w.ipv6.len() != 1 {
                        failures.push(format!(
                            "{}: treat-as-withdraw lost the prefixes: {w:?}",
                            r.class
                        ));
                    }
                }
                // the offending attribute is gone, the rest stays
                Some(ErrorAction::AttributeDiscard) => {
                    let t = err.attr_type.unwrap();
                    let kept = u.attrs.iter().filter(|a| a.attr.type_code() == t).count();
                    let first_kept = matches!(err.kind, ErrorKind::DuplicateAttribute) as usize;
                    if kept != first_kept || u.origin().is_none() || u.nlri.len() != 1 {
                        failures.push(format!(
                            "{}: discard kept {kept} of type {t}: {u:?}",
                            r.class
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn error_messages_name_what_and_where() {
    let m = message(&[], &[&[0x40, 1, 1, 3], AS_PATH2, NEXT_HOP], NLRI);
    let Ok(Message::Update(u)) = Message::decode(&m, &DecodeCx::default()) else {
        panic!()
    };
    assert_eq!(
        u.errors[0].to_string(),
        "invalid ORIGIN value 3 at byte 23 in attribute type 1 (UPDATE message error/invalid ORIGIN attribute (3/6), treat-as-withdraw)"
    );
}

//! Manifest parsing: documents, lists, kinds, and errors that point at the right line.

use super::*;

fn p(text: &str) -> Result<Manifests, ManifestError> {
    parse(Path::new("m.yaml"), text)
}

fn err(text: &str) -> String {
    p(text).unwrap_err().to_string()
}

const SVC: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 198.19.0.10
  ports:
  - name: http
    port: 80
";

#[test]
fn multi_document_yaml_with_empty_documents_and_comments() {
    let text = format!(
        "# leading comment\n---\n{SVC}---\n# only a comment\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  \
         labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: []\n\
         --- # a comment after the marker\napiVersion: v1\nkind: Node\nmetadata: {{name: node-a}}\n\
         ...\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\n---\n"
    );
    let m = p(&text).unwrap();
    assert_eq!(m.services.len(), 1);
    assert_eq!(m.services[0].metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(m.endpoint_slices.len(), 1);
    // No namespace given: `default`, as kubectl apply would.
    assert_eq!(
        m.endpoint_slices[0].metadata.namespace.as_deref(),
        Some("default")
    );
    assert!(m.node("node-a").is_some() && m.node("node-b").is_none());
    assert_eq!(
        m.ignored,
        [Ignored {
            file: "m.yaml".into(),
            document: 4,
            item: None,
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "cm".into(),
        }]
    );
}

#[test]
fn inline_document_after_marker() {
    let m = p("--- {apiVersion: v1, kind: Node, metadata: {name: n1}}\n--- {apiVersion: v1, kind: Node, metadata: {name: n2}}\n").unwrap();
    assert_eq!(m.nodes.len(), 2);
}

#[test]
fn lists_kind_list_and_typed_lists() {
    let text = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a, namespace: ns}
  spec: {clusterIP: 198.19.0.1, ports: [{port: 80}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: p}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: a-1, namespace: ns, labels: {kubernetes.io/service-name: a}}
  addressType: IPv4
---
apiVersion: v1
kind: ServiceList
items:
- metadata: {name: b, namespace: ns}
  spec: {clusterIP: 198.19.0.2}
";
    let m = p(text).unwrap();
    let names: Vec<_> = m
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(m.endpoint_slices.len(), 1);
    assert_eq!(m.ignored.len(), 1);
    assert_eq!(
        (m.ignored[0].kind.as_str(), m.ignored[0].item),
        ("Pod", Some(1))
    );
}

#[test]
fn json_files_parse() {
    let json = r#"{"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "j", "namespace": "ns"},
      "spec": {"clusterIP": "2001:db8:c::1", "ports": [{"port": 53, "protocol": "UDP"}]}}"#;
    let m = parse(Path::new("s.json"), json).unwrap();
    assert_eq!(
        m.services[0].spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("2001:db8:c::1")
    );
}

#[test]
fn type_errors_name_file_document_line_and_field() {
    let text = format!("{SVC}---\n{}", SVC.replace("port: 80", "port: eighty"));
    // The second document's `port: eighty` is on line 21 of the file.
    assert_eq!(
        err(&text),
        "m.yaml:21:11 (document 2): spec.ports[0].port: invalid type: string \"eighty\", expected i32"
    );
}

#[test]
fn syntax_errors_use_file_lines_even_inside_messages() {
    let text =
        format!("{SVC}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: \"unterminated\n");
    let e = p(&text).unwrap_err();
    let ManifestError::Syntax { at, message } = &e else {
        panic!("{e}")
    };
    assert_eq!((at.document, at.line), (2, 16));
    // serde_yaml mentions where the scalar started: line 15 of the file, not of the document.
    assert!(message.contains("line 15"), "{message}");

    let e = err("apiVersion: v1\nkind: Service\nspec:\n\t- x\n");
    assert!(e.starts_with("m.yaml:4:1 (document 1): "), "{e}");
}

#[test]
fn list_item_errors_are_located() {
    let text = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a}
- apiVersion: v1
  kind: Service
  metadata: {name: b}
  spec:
    ports:
    - port: [80]
";
    assert_eq!(
        err(text),
        "m.yaml:12:13 (document 1): items[1].spec.ports[0].port: invalid type: sequence, expected i32"
    );
}

#[test]
fn not_objects_and_bad_versions() {
    assert_eq!(
        err("apiVersion: v1\nmetadata: {name: x}\n"),
        "m.yaml:1 (document 1): kind missing: expected a Kubernetes object with apiVersion and kind"
    );
    assert!(err("just a string\n").starts_with("m.yaml:1:1 (document 1): invalid type: string"));
    assert!(err("- a\n- b\n").contains("invalid type: sequence"));
    assert_eq!(
        err("kind: EndpointSlice\napiVersion: discovery.k8s.io/v1beta1\naddressType: IPv4\n"),
        "m.yaml:2 (document 1): EndpointSlice apiVersion \"discovery.k8s.io/v1beta1\" is not supported, expected discovery.k8s.io/v1"
    );
    assert_eq!(
        err("apiVersion: v1\nkind: List\nitems:\n- metadata: {name: x}\n"),
        "m.yaml:3 (document 1): items[0]: kind missing: expected a Kubernetes object with apiVersion and kind"
    );
    assert_eq!(
        err("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v2, kind: Node}\n"),
        "m.yaml:3 (document 1): items[0]: Node apiVersion \"v2\" is not supported, expected v1"
    );
}

#[test]
fn files_are_kept_apart() {
    let a = (Path::new("a.yaml"), SVC);
    let b = (
        Path::new("b.yaml"),
        "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {podCIDRs: 5}\n",
    );
    let e = parse_all([a, b]).unwrap_err().to_string();
    assert!(e.starts_with("b.yaml:4:"), "{e}");
    let m = parse_all([a, a]).unwrap();
    assert_eq!(m.services.len(), 2); // duplicates are the model's business (it keeps the first)
}

#[test]
fn document_splitting() {
    let pieces = split_documents("a: 1\n---\nb: 2\n...\n--- c: 3\n---");
    let got: Vec<(usize, &str)> = pieces
        .iter()
        .map(|p| (p.start_line, p.text.as_ref()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "a: 1\n"),
            (3, "b: 2\n"),
            (5, ""),
            (5, "    c: 3\n"),
            (7, "")
        ]
    );
    // `----` and `---x` are not markers.
    assert_eq!(split_documents("a: |\n  x\n----\n").len(), 1);
}

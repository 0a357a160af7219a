//! Dependencies run one way: `shared::http` is the HTTP edge (it maps every domain's error to a
//! response), so no domain module may import it, or the edge and the domains become one circle.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read shared/src") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_domain_module_imports_the_http_edge() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let edge = [src.join("http.rs"), src.join("lib.rs")];
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !edge.contains(f))
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("read source");
            text.contains("crate::http") || text.contains("super::http")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "import shared::http: {offenders:?}");
}

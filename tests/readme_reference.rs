//! The README's configuration reference must list exactly the keys the filter accepts,
//! with the same type and default: operators configure from the README.

use oidc_edge::config::FIELDS;

#[test]
fn readme_configuration_table_matches_the_config_struct() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let section = readme.split("## Configuration reference").nth(1).expect("a `## Configuration reference` section");
    let rows: Vec<Vec<String>> = section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect();
    let mut expected = String::new();
    for f in FIELDS {
        expected.push_str(&format!("| `{}` | {} | {} | {} |\n", f.name, f.kind, f.default, f.doc));
    }
    let names: Vec<String> = rows.iter().map(|r| r[0].trim_matches('`').to_string()).collect();
    let want: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(names, want, "README keys differ from config::FIELDS; the table should be:\n{expected}");
    for (row, f) in rows.iter().zip(FIELDS) {
        assert_eq!(row.len(), 4, "row `{}` should have 4 columns", f.name);
        assert_eq!(row[1], f.kind, "type of `{}`", f.name);
        assert_eq!(row[2], f.default, "default of `{}`", f.name);
        assert_eq!(row[3], f.doc, "meaning of `{}`", f.name);
    }
}

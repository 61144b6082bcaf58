// Package stagelyyaml reads and checks a repository's deployment description: the optional
// stagely.yaml (schema in docs/stagely-yaml.md) and the service list of its compose file.
//
// Every problem it finds carries the file, line and column it comes from, so the same
// values can fail a deployment and become check-run annotations on a pull request.
package stagelyyaml

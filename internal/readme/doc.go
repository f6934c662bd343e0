// Package readme finds the code blocks of a Markdown file, so that a test
// can run the commands README.md shows a newcomer, as they are written
// there, and check what the README says they print (readme_test.go).
//
// Everything here is pure and safe to call concurrently.
package readme

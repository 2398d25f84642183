// Package e2e holds coffer's end-to-end tests of the library core: a
// generated folder tree is backed up through backup.Run into a local or S3
// (versitygw) repository and restored, verified and damaged through the
// restore package, the way the CLI, the daemon and the drill use them.
//
// The package has no code of its own; everything is in its _test.go files.
// Trees come from internal/testing/fixture (WriteTree, AddFiles, CompareTrees),
// which compares restored trees without using any of coffer's code.
package e2e

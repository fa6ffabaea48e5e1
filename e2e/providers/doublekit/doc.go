// Package doublekit is what every provider double needs besides its API: a
// job clock the test moves by hand and a recorder of the requests received.
// The doubles share it so that a test drives time and inspects traffic the
// same way against any of them, and a fix to either lands once.
package doublekit

package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// termSafe makes a string from a record safe to print on a terminal. Records
// carry what a workload controls (comm, exe, names it chose), and a terminal
// acts on control sequences: a comm of "\r\x1b[2K\x1b[1A\x1b[2K" erased an
// earlier row from an operator's screen while the file kept it. Every byte
// or rune that a terminal could act on, or that would hide what is printed,
// becomes a visible escape:
//
//   - C0 controls (including TAB, which would break the table's columns,
//     CR, LF and ESC), DEL and C1 controls (U+0080-U+009F; some terminals
//     take U+009B as CSI) print as \xNN or \uNNNN;
//   - invalid UTF-8 prints byte by byte as \xNN;
//   - format characters (bidirectional overrides such as U+202E, zero-width
//     joiners) and the line and paragraph separators print as \uNNNN, so
//     text cannot be reordered or hidden;
//   - a backslash prints as \\, so an escape in the output always means
//     the record held that byte, never the literal text "\x1b".
//
// JSON output needs none of this: the encoder escapes control characters.
func termSafe(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case r >= 0x80 && r <= 0x9f, unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			b.WriteString(`\u`)
			h := strconv.FormatUint(uint64(r), 16)
			b.WriteString(strings.Repeat("0", max(4-len(h), 0)) + h)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

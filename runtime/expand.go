package runtime

import "strings"

// expand replaces $(VAR) references in input as the kubelet does for command, args and env values:
// a defined VAR is substituted, an undefined one is left as written, and $$ escapes a $.
func expand(input string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] != '$' || cursor+1 >= len(input) {
			continue
		}
		b.WriteString(input[checkpoint:cursor])
		read, isVar, advance := readVariable(input[cursor+1:])
		switch {
		case !isVar:
			b.WriteString(read)
		default:
			if v, ok := lookup(read); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + read + ")")
			}
		}
		cursor += advance
		checkpoint = cursor + 1
	}
	return b.String() + input[checkpoint:]
}

// readVariable reads what follows a '$': a variable name in parentheses, an escaped '$', or
// anything else, which is kept as written. advance is how many bytes it consumed.
func readVariable(input string) (read string, isVar bool, advance int) {
	switch input[0] {
	case '$':
		return "$", false, 1
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	default:
		return "$" + input[:1], false, 1
	}
}

package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// ValidCloseCode reports whether code may appear in a close frame on the
// wire (RFC 6455 section 7.4 and the IANA registry): 1000-1003, 1007-1014
// and 3000-4999. Codes below 1000, 1004 (reserved), 1005, 1006 and 1015
// (local reports only), the unassigned 1016-2999 and codes from 5000 on are
// not.
func ValidCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClose decodes a close frame's payload. An empty payload means no
// status: (CloseNoStatus, nil, nil). A 1-byte payload or a code
// ValidCloseCode rejects is a 1002 *Error; a reason that is not valid UTF-8
// a 1007 *Error. reason is a view of p.
func ParseClose(p []byte) (code uint16, reason []byte, err error) {
	switch len(p) {
	case 0:
		return CloseNoStatus, nil, nil
	case 1:
		return 0, nil, errCloseOneByte
	}
	code = binary.BigEndian.Uint16(p)
	if !ValidCloseCode(code) {
		return 0, nil, errCloseCode
	}
	reason = p[2:]
	if !utf8.Valid(reason) {
		return 0, nil, errCloseReasonUTF8
	}
	return code, reason, nil
}

// AppendClose appends a close frame's payload to dst: code big-endian and
// reason, cut to fit the 125 bytes of a control frame at a UTF-8 boundary.
// code 0 or CloseNoStatus gives an empty payload (and drops the reason).
// The caller passes a code ValidCloseCode accepts and a UTF-8 reason.
func AppendClose(dst []byte, code uint16, reason string) []byte {
	if code == 0 || code == CloseNoStatus {
		return dst
	}
	dst = binary.BigEndian.AppendUint16(dst, code)
	const max = MaxControlPayload - 2
	if len(reason) > max {
		n := max
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	return append(dst, reason...)
}

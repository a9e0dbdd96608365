package policy

import "testing"

func TestParse(t *testing.T) {
	if v, err := ParseSwap(""); v != SwapExists || err != nil {
		t.Errorf(`ParseSwap("") = %q, %v`, v, err)
	}
	if v, err := ParseCopy("force"); v != CopyForce || err != nil {
		t.Errorf(`ParseCopy("force") = %q, %v`, v, err)
	}
	if v, err := ParseOnMiss(""); v != OnMissPassthrough || err != nil {
		t.Errorf(`ParseOnMiss("") = %q, %v`, v, err)
	}
	if v, err := ParsePrivate("allow"); v != PrivateAllow || err != nil {
		t.Errorf(`ParsePrivate("allow") = %q, %v`, v, err)
	}
	if v, err := ParsePrivateImages(""); v != PrivateImagesCheck || err != nil {
		t.Errorf(`ParsePrivateImages("") = %q, %v`, v, err)
	}
	if v, err := ParsePrivateImages("swap"); v != PrivateImagesSwap || err != nil {
		t.Errorf(`ParsePrivateImages("swap") = %q, %v`, v, err)
	}
	// Unknown: the default, and an error naming the values in their order.
	v, err := ParseSwap("allways")
	if v != SwapExists || err == nil || err.Error() != `invalid value "allways", must be one of: always, exists` {
		t.Errorf(`ParseSwap("allways") = %q, %v`, v, err)
	}
	if _, err := ParseCopy("Delayed"); err == nil {
		t.Errorf("values are case-sensitive, as the original's")
	}
}

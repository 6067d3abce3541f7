package rotation

import (
	"fmt"
	"regexp"
)

var deploymentName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateName checks a deployment's or a named key's name by the one rule New applies to both:
// 1-63 characters from [a-z0-9_-], starting with a letter or digit, so that it is safe in a Vault path, a metric
// label and a container label. The error quotes the name and states the rule; the caller names the field.
func ValidateName(name string) error {
	if !deploymentName.MatchString(name) {
		return fmt.Errorf("%q: want 1-63 characters from [a-z0-9_-], starting with a letter or digit", name)
	}
	return nil
}

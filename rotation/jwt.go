package rotation

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// readToken mints a JWT that Qdrant's jwt_rbac accepts as global read access: HS256 signed with an admin key,
// {"access":"r","exp":...}. It is a Key, so it never prints.
func readToken(admin Key, exp time.Time) (Key, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"access": "r", "exp": exp.Unix()})
	signed, err := tok.SignedString([]byte(admin.Reveal()))
	if err != nil {
		return Key{}, fmt.Errorf("mint read JWT: %w", err)
	}
	return Key{v: signed}, nil
}

package authstore

import (
	"errors"

	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// HoldLoad starts the load a call of Token would share for t's authorization id, one
// that waits until release and then fails with err: a load begun during an outage that
// fails after it. The load is registered when HoldLoad returns.
func (s *Store) HoldLoad(t tenant.ID, id string) (release func(err error)) {
	failWith := make(chan error, 1)
	s.flight.DoChan(s.flightKey(s.cache.snapshot(), t, id, secrets.Value{}), func() (any, error) {
		err := <-failWith
		if err == nil {
			err = errors.New("released")
		}
		return nil, err
	})
	return func(err error) { failWith <- err }
}

// Connected starts a listening session as a reconnect of the listener does.
func (s *Store) Connected() { s.connected() }

package suite

func (s *Suite) oddsfeed() *ScenarioResult  { return &ScenarioResult{Name: "oddsfeed"} }
func (s *Suite) idle() *ScenarioResult      { return &ScenarioResult{Name: "idle"} }
func (s *Suite) storm() *ScenarioResult     { return &ScenarioResult{Name: "storm"} }
func (s *Suite) crossEdge() *ScenarioResult { return &ScenarioResult{Name: "cross"} }
func (s *Suite) plots() error               { return nil }

package oddsfeed

import "strconv"

// template is a kind of market: its name and its selections' names, in
// the order a screen lists them. "{home}" and "{away}" stand for the
// event's teams.
type template struct {
	name       string
	selections []string
}

var scores = []string{"1-0", "2-0", "2-1", "3-0", "3-1", "3-2", "0-0", "1-1", "2-2", "3-3",
	"0-1", "0-2", "1-2", "0-3", "1-3", "2-3", "Any Other Home Win", "Any Other Draw", "Any Other Away Win", "4-4"}

var players = []string{"No Goalscorer", "Okafor", "Lindqvist", "Moreau", "Castellanos", "Brennan", "Nakamura",
	"Da Silva", "Kowalski", "Haddad", "Müller", "O'Connell", "Petrović", "Van Dijkstra", "Adeyemi",
	"Rasmussen", "Ferreira", "Schultz", "Al-Amin", "Whitfield"}

func overUnder(what string, line string) template {
	return template{"Over/Under " + line + " " + what, []string{"Over " + line, "Under " + line}}
}

// templates are the markets of a football match, the most watched first
// (an event's market slot i uses templates[i % len]).
var templates = []template{
	{"Match Odds", []string{"{home}", "The Draw", "{away}"}},
	overUnder("Goals", "2.5"),
	{"Both Teams To Score", []string{"Yes", "No"}},
	{"Correct Score", scores},
	{"Next Goal", []string{"{home}", "No Goal", "{away}"}},
	{"Asian Handicap {home} -0.5", []string{"{home} -0.5", "{away} +0.5"}},
	overUnder("Goals", "1.5"),
	overUnder("Goals", "3.5"),
	{"Double Chance", []string{"Home or Draw", "Draw or Away", "Home or Away"}},
	{"Draw No Bet", []string{"{home}", "{away}"}},
	{"Half Time/Full Time", []string{"Home/Home", "Home/Draw", "Home/Away", "Draw/Home", "Draw/Draw", "Draw/Away", "Away/Home", "Away/Draw", "Away/Away"}},
	{"First Goalscorer", players},
	{"Total Goals", []string{"0 Goals", "1 Goal", "2 Goals", "3 Goals", "4 Goals", "5 Goals", "6+ Goals"}},
	overUnder("Goals", "0.5"),
	overUnder("Goals", "4.5"),
	{"Winning Margin", []string{"{home} by 1", "{home} by 2", "{home} by 3+", "Score Draw", "No Goal", "{away} by 1", "{away} by 2", "{away} by 3+"}},
	{"Half Time Result", []string{"{home}", "The Draw", "{away}"}},
	{"Asian Handicap {home} -1.5", []string{"{home} -1.5", "{away} +1.5"}},
	overUnder("Corners", "9.5"),
	overUnder("Cards", "3.5"),
	{"{home} Total Goals", []string{"Over 1.5", "Under 1.5"}},
	{"{away} Total Goals", []string{"Over 1.5", "Under 1.5"}},
	{"Anytime Goalscorer", players[1:]},
	{"Half Time Score", scores[:10]},
	{"Match Odds and Both Teams To Score", []string{"{home}/Yes", "{home}/No", "Draw/Yes", "Draw/No", "{away}/Yes", "{away}/No"}},
	{"Time of Next Goal", []string{"Before 60:00", "60:00 - 74:59", "75:00 - 89:59", "No Goal"}},
	{"Next Corner", []string{"{home}", "No Corner", "{away}"}},
	overUnder("Goals", "5.5"),
	{"Goal Odd/Even", []string{"Odd", "Even"}},
	{"Last Goalscorer", players},
}

var towns = []string{"Northbridge", "Eastport", "Ashford", "Kingsmere", "Redcastle", "Westvale", "Stonehaven",
	"Millbrook", "Harrowgate", "Brightwater", "Oakham", "Fairhaven", "Dunmore", "Calder", "Linton",
	"Marston", "Ravensby", "Southwick", "Thornbury", "Yarrow", "Elmstead", "Glenrock", "Highcliff", "Lowmoor"}

var suffixes = []string{"FC", "United", "City", "Athletic", "Rovers", "Town", "Albion", "Wanderers"}

// teamName is the name of team number t (deterministic, no randomness).
func teamName(t int) string {
	return towns[t%len(towns)] + " " + suffixes[(t/len(towns))%len(suffixes)]
}

// selectionNames are the names of a market's selections: the template's,
// cut to at most hi, padded with "Other k" to at least lo.
func selectionNames(t template, home, away string, lo, hi int) []string {
	n := min(max(len(t.selections), lo), hi)
	out := make([]string, n)
	for i := range out {
		if i < len(t.selections) {
			out[i] = fill(t.selections[i], home, away)
		} else {
			out[i] = "Other " + strconv.Itoa(i-len(t.selections)+1)
		}
	}
	return out
}

func fill(s, home, away string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '{' && len(s) >= i+6 && s[i:i+6] == "{home}":
			b = append(b, home...)
			i += 5
		case s[i] == '{' && len(s) >= i+6 && s[i:i+6] == "{away}":
			b = append(b, away...)
			i += 5
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

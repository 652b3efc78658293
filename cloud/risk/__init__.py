"""The risk engine: pure rules over each vehicle's stored fixes and events, in GNSS-time order."""

"""Weighbridge indicators: readings and framing (`reading`, `framing`), the formats (`protocols`,
`yaohua`), the pure weight capture (`capture`), the serial/TCP reader (`scale`) and the indicator
simulator (`simulator`). docs/hardware.md maps indicator models to `protocol` settings."""

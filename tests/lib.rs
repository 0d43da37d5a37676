//! End-to-end tests of whole eddo flows live beside this file; each starts its own moto server
//! on loopback (installed by `make setup`) and provisions what it needs.

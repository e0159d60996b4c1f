"""Tests of the station agent, mirroring the code's folders."""

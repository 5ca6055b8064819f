from tre.registers import CODE_LISTS, ICD10, ICPC2, SOURCES, Manifest, manifest_path, municipalities


def test_municipalities_are_the_357_of_2024():
    ms = municipalities()
    assert len(ms) == 357
    assert sum(m.population for m in ms) == 5_550_203
    assert {m.name: m.population for m in ms}["Utsira"] == 215
    assert sum(m.population < 1000 for m in ms) == 23


def test_every_source_is_consistent():
    for source in SOURCES.values():
        names = source.column_names
        assert len(set(names)) == len(names), source.name
        for c in source.columns:
            assert c.codes is None or c.codes in CODE_LISTS or c.codes in {"municipality", "icpc2", "icd10"}
        if source.event_date:
            assert source.event_date in names
        if source.key:
            assert source.key in names
        assert "fnr" not in source.variables


def test_opt_out_sources_keep_administrative_fields():
    for name in ("helsestasjon", "svangerskap", "tannhelse"):
        source = SOURCES[name]
        assert source.registration_opt_out
        roles = {c.name: c.role for c in source.columns}
        assert roles["contact_date"] == roles["provider_id"] == roles["contact_type"] == "admin"
        assert any(r == "health" for r in roles.values())


def test_code_shapes():
    assert ICPC2.match("T90") and ICPC2.match("K86") and not ICPC2.match("T9") and not ICPC2.match("E11")
    assert ICD10.match("E11") and ICD10.match("E119") and ICD10.match("I219") and not ICD10.match("E11.9")


def test_manifest_round_trip(tmp_path):
    m = Manifest(source="kuhr", period="2023", file="kuhr-2023.csv", format="csv", rows=3, sha256="0" * 64)
    path = manifest_path(tmp_path / "kuhr-2023.csv")
    assert path.name == "kuhr-2023.manifest.json"
    path.write_text(m.to_json())
    assert Manifest.read(path) == m

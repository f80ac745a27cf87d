from resource_mgr.ids import new_id


def test_ids_are_unique_opaque_and_in_creation_order():
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # same-millisecond ids keep their order
    assert all(len(i) == 26 and i.isalnum() for i in ids)

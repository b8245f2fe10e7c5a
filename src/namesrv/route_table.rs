//! The nameserver's in-memory route state (spec/remoting.md §7): topic -> queue data per
//! broker name, broker name -> addresses per broker id, cluster -> broker names, and broker
//! liveness per address. Owns registration, unregistration, eviction (connection closed or
//! silent for [`BROKER_EXPIRED_MS`]) and every read the request handlers need.
//!
//! Pure state: no I/O, no clock (callers pass `now_ms`). Maps are `BTreeMap`s so that every
//! answer is deterministic (upstream's HashMap order is arbitrary; clients do not depend on it).

use std::collections::{BTreeMap, BTreeSet};

use super::ConnId;

/// A broker not heard from (REGISTER_BROKER / unchanged QUERY_DATA_VERSION) for longer than
/// this is evicted by [`RouteTable::scan_expired`].
pub const BROKER_EXPIRED_MS: u64 = 120_000;

/// The broker id of a master.
pub const MASTER_ID: i64 = 0;

/// Topic permission bit "writable" (PermName.PERM_WRITE).
pub const PERM_WRITE: i32 = 2;

/// A broker's topic-config version: `{counter, timestamp}` (5.x adds `stateVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataVersion {
    pub timestamp: i64,
    pub counter: i64,
    pub state_version: i64,
}

/// One topic of a registration body (what the nameserver keeps of a TopicConfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigEntry {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// The topic part of a registration: the broker's DataVersion and its topic configs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicConfigWrapper {
    pub data_version: DataVersion,
    pub topics: Vec<TopicConfigEntry>,
}

/// Queues one broker name offers for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// The addresses of one broker name (id 0 = master, >0 = slaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<i64, String>,
}

/// What GET_ROUTEINFO_BY_TOPIC answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRouteData {
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
    pub order_topic_conf: Option<String>,
}

#[derive(Debug, Clone)]
struct BrokerLive {
    last_update_ms: u64,
    data_version: DataVersion,
    conn: ConnId,
    ha_server_addr: String,
}

/// The identity part of a REGISTER_BROKER request.
#[derive(Debug, Clone, Copy)]
pub struct BrokerIdentity<'a> {
    pub cluster_name: &'a str,
    pub broker_addr: &'a str,
    pub broker_name: &'a str,
    pub broker_id: i64,
}

/// For a slave whose master is registered: the master's address and HA address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    pub master_addr: Option<String>,
    pub ha_server_addr: Option<String>,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// topic -> queue data per broker name, in registration order (as upstream's list).
    topic_queue_table: BTreeMap<String, Vec<QueueData>>,
    broker_addr_table: BTreeMap<String, BrokerData>,
    cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    broker_live_table: BTreeMap<String, BrokerLive>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// REGISTER_BROKER semantics (spec §7.1).
    pub fn register(
        &mut self,
        who: BrokerIdentity<'_>,
        ha_server_addr: &str,
        wrapper: &TopicConfigWrapper,
        conn: ConnId,
        now_ms: u64,
    ) -> RegisterResult {
        self.cluster_addr_table
            .entry(who.cluster_name.to_string())
            .or_default()
            .insert(who.broker_name.to_string());

        let mut first = false;
        let data = self
            .broker_addr_table
            .entry(who.broker_name.to_string())
            .or_insert_with(|| {
                first = true;
                BrokerData {
                    cluster: who.cluster_name.to_string(),
                    broker_name: who.broker_name.to_string(),
                    broker_addrs: BTreeMap::new(),
                }
            });
        // The same address under another id (slave promoted to master, or the reverse):
        // the new id replaces the old one.
        data.broker_addrs
            .retain(|id, addr| *id == who.broker_id || addr != who.broker_addr);
        let old = data
            .broker_addrs
            .insert(who.broker_id, who.broker_addr.to_string());
        first = first || old.is_none();

        if who.broker_id == MASTER_ID
            && (first || self.is_changed(who.broker_addr, &wrapper.data_version))
        {
            for topic in &wrapper.topics {
                self.upsert_queue_data(who.broker_name, topic);
            }
        }

        self.broker_live_table.insert(
            who.broker_addr.to_string(),
            BrokerLive {
                last_update_ms: now_ms,
                data_version: wrapper.data_version,
                conn,
                ha_server_addr: ha_server_addr.to_string(),
            },
        );

        let mut result = RegisterResult::default();
        if who.broker_id != MASTER_ID {
            let master = self
                .broker_addr_table
                .get(who.broker_name)
                .and_then(|d| d.broker_addrs.get(&MASTER_ID));
            if let Some(master) = master {
                if let Some(live) = self.broker_live_table.get(master) {
                    result.master_addr = Some(master.clone());
                    result.ha_server_addr = Some(live.ha_server_addr.clone());
                }
            }
        }
        result
    }

    fn upsert_queue_data(&mut self, broker_name: &str, topic: &TopicConfigEntry) {
        let fresh = QueueData {
            broker_name: broker_name.to_string(),
            read_queue_nums: topic.read_queue_nums,
            write_queue_nums: topic.write_queue_nums,
            perm: topic.perm,
            topic_sys_flag: topic.topic_sys_flag,
        };
        let list = self
            .topic_queue_table
            .entry(topic.topic_name.clone())
            .or_default();
        if list.contains(&fresh) {
            return;
        }
        list.retain(|q| q.broker_name != broker_name);
        list.push(fresh);
    }

    /// True when `broker_addr` is unknown or last registered another DataVersion.
    pub fn is_changed(&self, broker_addr: &str, version: &DataVersion) -> bool {
        self.broker_live_table
            .get(broker_addr)
            .is_none_or(|live| live.data_version != *version)
    }

    /// Refreshes liveness (QUERY_DATA_VERSION reporting "unchanged").
    pub fn touch(&mut self, broker_addr: &str, now_ms: u64) {
        if let Some(live) = self.broker_live_table.get_mut(broker_addr) {
            live.last_update_ms = now_ms;
        }
    }

    /// The DataVersion last registered by `broker_addr`.
    pub fn data_version_of(&self, broker_addr: &str) -> Option<DataVersion> {
        self.broker_live_table
            .get(broker_addr)
            .map(|live| live.data_version)
    }

    /// UNREGISTER_BROKER: removes the id's entry (by id, as upstream) and the address liveness.
    pub fn unregister(&mut self, who: BrokerIdentity<'_>) {
        self.broker_live_table.remove(who.broker_addr);
        let mut name_gone = false;
        if let Some(data) = self.broker_addr_table.get_mut(who.broker_name) {
            data.broker_addrs.remove(&who.broker_id);
            if data.broker_addrs.is_empty() {
                self.broker_addr_table.remove(who.broker_name);
                name_gone = true;
            }
        }
        if name_gone {
            self.forget_broker_name(who.broker_name, Some(who.cluster_name));
        }
    }

    /// Removes a broker name from its cluster (or from every cluster when `cluster` is None)
    /// and its queue data from every topic; topics left without queue data disappear.
    fn forget_broker_name(&mut self, broker_name: &str, cluster: Option<&str>) {
        self.cluster_addr_table.retain(|name, set| {
            if cluster.is_none_or(|c| c == name) {
                set.remove(broker_name);
            }
            !set.is_empty()
        });
        self.topic_queue_table.retain(|_, list| {
            list.retain(|q| q.broker_name != broker_name);
            !list.is_empty()
        });
    }

    /// Evicts the broker at `broker_addr` (connection gone or expired).
    fn evict_addr(&mut self, broker_addr: &str) {
        self.broker_live_table.remove(broker_addr);
        let mut emptied = Vec::new();
        for (name, data) in &mut self.broker_addr_table {
            let before = data.broker_addrs.len();
            data.broker_addrs.retain(|_, addr| addr != broker_addr);
            if before != data.broker_addrs.len() && data.broker_addrs.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.broker_addr_table.remove(&name);
            self.forget_broker_name(&name, None);
        }
    }

    /// Evicts every broker registered over `conn`; returns their addresses.
    pub fn close_connection(&mut self, conn: ConnId) -> Vec<String> {
        let gone: Vec<String> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| live.conn == conn)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &gone {
            self.evict_addr(addr);
        }
        gone
    }

    /// Evicts every broker silent for more than [`BROKER_EXPIRED_MS`]; returns their addresses.
    pub fn scan_expired(&mut self, now_ms: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| live.last_update_ms.saturating_add(BROKER_EXPIRED_MS) < now_ms)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &gone {
            self.evict_addr(addr);
        }
        gone
    }

    /// The route of `topic`: found only with queue data and at least one known broker name.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let queue_datas = self.topic_queue_table.get(topic)?;
        let mut names: Vec<&str> = Vec::with_capacity(queue_datas.len());
        for q in queue_datas {
            if !names.contains(&q.broker_name.as_str()) {
                names.push(&q.broker_name);
            }
        }
        let broker_datas: Vec<BrokerData> = names
            .iter()
            .filter_map(|name| self.broker_addr_table.get(*name).cloned())
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        Some(TopicRouteData {
            queue_datas: queue_datas.clone(),
            broker_datas,
            order_topic_conf: None,
        })
    }

    pub fn brokers(&self) -> &BTreeMap<String, BrokerData> {
        &self.broker_addr_table
    }

    pub fn clusters(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.cluster_addr_table
    }

    /// Every topic with queue data.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topic_queue_table.keys().map(String::as_str)
    }

    /// Topics served by at least one broker name of `cluster` (empty for an unknown cluster).
    pub fn topics_by_cluster(&self, cluster: &str) -> BTreeSet<&str> {
        let Some(names) = self.cluster_addr_table.get(cluster) else {
            return BTreeSet::new();
        };
        self.topic_queue_table
            .iter()
            .filter(|(_, list)| list.iter().any(|q| names.contains(&q.broker_name)))
            .map(|(topic, _)| topic.as_str())
            .collect()
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only the queue data of `cluster`'s brokers.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        let Some(cluster) = cluster else {
            self.topic_queue_table.remove(topic);
            return;
        };
        let Some(names) = self.cluster_addr_table.get(cluster) else {
            return;
        };
        if let Some(list) = self.topic_queue_table.get_mut(topic) {
            list.retain(|q| !names.contains(&q.broker_name));
            if list.is_empty() {
                self.topic_queue_table.remove(topic);
            }
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER: clears the write bit of every queue data of `broker_name`;
    /// returns how many topics it touched.
    pub fn wipe_write_perm(&mut self, broker_name: &str) -> i32 {
        let mut count = 0;
        for list in self.topic_queue_table.values_mut() {
            for q in list.iter_mut().filter(|q| q.broker_name == broker_name) {
                q.perm &= !PERM_WRITE;
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, queues: i32) -> TopicConfigEntry {
        TopicConfigEntry {
            topic_name: name.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: 6,
            topic_sys_flag: 0,
        }
    }

    fn wrapper(counter: i64, topics: &[(&str, i32)]) -> TopicConfigWrapper {
        TopicConfigWrapper {
            data_version: DataVersion {
                timestamp: 1000,
                counter,
                state_version: 0,
            },
            topics: topics.iter().map(|(n, q)| topic(n, *q)).collect(),
        }
    }

    fn who<'a>(name: &'a str, addr: &'a str, id: i64) -> BrokerIdentity<'a> {
        BrokerIdentity {
            cluster_name: "C",
            broker_addr: addr,
            broker_name: name,
            broker_id: id,
        }
    }

    #[test]
    fn topics_applied_only_on_change_or_first() {
        let mut t = RouteTable::new();
        t.register(
            who("a", "h:1", 0),
            "h:2",
            &wrapper(1, &[("T", 4)]),
            ConnId(1),
            0,
        );
        assert_eq!(t.route("T").unwrap().queue_datas[0].write_queue_nums, 4);
        // Same DataVersion, different content: ignored.
        t.register(
            who("a", "h:1", 0),
            "h:2",
            &wrapper(1, &[("T", 8)]),
            ConnId(1),
            1,
        );
        assert_eq!(t.route("T").unwrap().queue_datas[0].write_queue_nums, 4);
        // Changed DataVersion: applied; absent topics stay.
        t.register(
            who("a", "h:1", 0),
            "h:2",
            &wrapper(2, &[("U", 2)]),
            ConnId(1),
            2,
        );
        assert!(t.route("T").is_some());
        assert!(t.route("U").is_some());
    }

    #[test]
    fn slave_does_not_change_routes_and_gets_master() {
        let mut t = RouteTable::new();
        let r = t.register(
            who("a", "s:1", 1),
            "s:2",
            &wrapper(1, &[("T", 4)]),
            ConnId(2),
            0,
        );
        assert_eq!(r, RegisterResult::default());
        assert!(t.route("T").is_none());
        t.register(
            who("a", "m:1", 0),
            "m:2",
            &wrapper(1, &[("T", 4)]),
            ConnId(1),
            0,
        );
        let r = t.register(
            who("a", "s:1", 1),
            "s:2",
            &wrapper(1, &[("X", 4)]),
            ConnId(2),
            0,
        );
        assert_eq!(r.master_addr.as_deref(), Some("m:1"));
        assert_eq!(r.ha_server_addr.as_deref(), Some("m:2"));
        assert!(t.route("X").is_none());
        assert_eq!(t.route("T").unwrap().broker_datas[0].broker_addrs.len(), 2);
    }

    #[test]
    fn same_address_new_id_replaces() {
        let mut t = RouteTable::new();
        t.register(who("a", "h:1", 1), "h:2", &wrapper(1, &[]), ConnId(1), 0);
        t.register(
            who("a", "h:1", 0),
            "h:2",
            &wrapper(1, &[("T", 1)]),
            ConnId(1),
            0,
        );
        let addrs = &t.brokers()["a"].broker_addrs;
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[&0], "h:1");
    }

    #[test]
    fn eviction_removes_name_cluster_and_topics() {
        let mut t = RouteTable::new();
        t.register(
            who("a", "m:1", 0),
            "m:2",
            &wrapper(1, &[("T", 4)]),
            ConnId(1),
            0,
        );
        t.register(who("a", "s:1", 1), "s:2", &wrapper(1, &[]), ConnId(2), 0);
        assert_eq!(t.close_connection(ConnId(2)), vec!["s:1".to_string()]);
        assert!(t.route("T").is_some());
        assert!(t.scan_expired(BROKER_EXPIRED_MS).is_empty());
        assert_eq!(
            t.scan_expired(BROKER_EXPIRED_MS + 1),
            vec!["m:1".to_string()]
        );
        assert!(t.route("T").is_none());
        assert!(t.brokers().is_empty());
        assert!(t.clusters().is_empty());
        assert_eq!(t.topic_names().count(), 0);
    }

    #[test]
    fn unregister_by_id_and_delete_and_wipe() {
        let mut t = RouteTable::new();
        t.register(
            who("a", "m:1", 0),
            "m:2",
            &wrapper(1, &[("T", 4)]),
            ConnId(1),
            0,
        );
        t.register(
            who("b", "n:1", 0),
            "n:2",
            &wrapper(1, &[("T", 4)]),
            ConnId(3),
            0,
        );
        assert_eq!(t.wipe_write_perm("a"), 1);
        let route = t.route("T").unwrap();
        assert_eq!(route.queue_datas[0].perm, 4);
        assert_eq!(route.broker_datas.len(), 2);
        assert_eq!(t.topics_by_cluster("C"), BTreeSet::from(["T"]));
        assert!(t.topics_by_cluster("nope").is_empty());
        t.delete_topic("T", Some("other"));
        assert!(t.route("T").is_some());
        t.unregister(who("b", "n:1", 0));
        assert_eq!(t.route("T").unwrap().queue_datas.len(), 1);
        t.delete_topic("T", Some("C"));
        assert!(t.route("T").is_none());
    }
}

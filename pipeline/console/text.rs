//! Text: every string the console shows, one table per language.
//!
//! The control room reads Chinese (`zh-CN`, the default); `en` is for
//! integrators and visitors. A new string is a new field, so a language that
//! lacks it does not compile.

use serde::Deserialize;

/// `[console] language`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Language {
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Language {
    pub fn text(self) -> &'static Text {
        match self {
            Language::ZhCn => &ZH_CN,
            Language::En => &EN,
        }
    }

    /// The language's name in itself, for the switch between them.
    pub fn own_name(self) -> &'static str {
        match self {
            Language::ZhCn => "中文",
            Language::En => "English",
        }
    }

    /// The other language: the one the switch offers.
    pub fn other(self) -> Language {
        match self {
            Language::ZhCn => Language::En,
            Language::En => Language::ZhCn,
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::En => "en",
        }
    }
}

pub struct Text {
    pub title: &'static str,
    pub login: &'static str,
    pub user: &'static str,
    pub password: &'static str,
    pub login_failed: &'static str,
    pub login_throttled: &'static str,
    /// Unit after the wait a throttled login is told.
    pub minutes: &'static str,
    pub logout: &'static str,
    pub wall: &'static str,
    pub search: &'static str,
    /// The shift report: title, period fields, figures.
    pub report: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub show: &'static str,
    pub alerts_count: &'static str,
    pub unresolved: &'static str,
    pub time_to_take: &'static str,
    pub time_to_resolve: &'static str,
    pub median_longest: &'static str,
    pub taken_by: &'static str,
    pub no_outcome: &'static str,
    pub cameras: &'static str,
    pub no_alerts: &'static str,
    /// The same on a compound node: other nodes' alerts are elsewhere.
    pub no_alerts_on_this_node: &'static str,
    /// The same on `vigil console`, which runs no camera.
    pub no_alerts_console_only: &'static str,
    pub fire_smoke: &'static str,
    pub battery_cart: &'static str,
    pub loitering: &'static str,
    pub critical: &'static str,
    pub high: &'static str,
    pub warning: &'static str,
    pub camera: &'static str,
    pub kind: &'static str,
    pub zone: &'static str,
    pub line: &'static str,
    pub started: &'static str,
    pub ended: &'static str,
    pub duration: &'static str,
    pub recipients: &'static str,
    /// Before the configured instruction for the alert's kind.
    pub instruction: &'static str,
    /// The page of alerts resolved in the last 24 hours, and its columns.
    pub resolved_recently: &'static str,
    pub resolved_at: &'static str,
    pub handled_by: &'static str,
    pub none_resolved: &'static str,
    pub state: &'static str,
    pub open: &'static str,
    pub interrupted: &'static str,
    /// Taking an alert: it is in progress, handled by the named operator.
    pub take: &'static str,
    pub resolve: &'static str,
    pub in_progress_by: &'static str,
    pub resolved_by: &'static str,
    pub note: &'static str,
    /// A resolution's outcome: the column and each reason code.
    pub outcome: &'static str,
    pub on_site: &'static str,
    pub false_alarm: &'static str,
    pub duplicate: &'static str,
    pub test: &'static str,
    pub details: &'static str,
    pub sound_on: &'static str,
    pub sound_off: &'static str,
    /// The browser holds sound back until a click on the page.
    pub sound_blocked: &'static str,
    /// After a count: new cards above the scrolled view.
    pub new_alerts: &'static str,
    pub up: &'static str,
    pub reconnecting: &'static str,
    pub failed: &'static str,
    pub stopped: &'static str,
    pub starting: &'static str,
    /// A compound camera run by another node: "on node-b".
    pub on_node: &'static str,
    pub nodes: &'static str,
    pub this_node: &'static str,
    pub node_down: &'static str,
    /// `{t}`: how long ago, e.g. "3 min" or "40 s".
    pub node_last_heard: &'static str,
    /// Another node's alert whose node does not answer; `{node}`.
    pub elsewhere_unreachable: &'static str,
    /// A camera another node runs, whose node does not answer; `{node}`.
    pub camera_elsewhere_unreachable: &'static str,
    /// Another node's alert, and no `[compound] secret_file` to ask it with.
    pub elsewhere_no_secret: &'static str,
    /// The compound's PostgreSQL does not answer: other nodes' alerts unknown.
    pub compound_db_down: &'static str,
    /// A take or resolution of a down node's alert, kept for when it is back.
    pub ack_queued: &'static str,
    pub fps: &'static str,
    pub no_picture: &'static str,
    /// The live video of cameras (the grid, a camera's page).
    pub live_video: &'static str,
    /// Before the age of the live picture: "picture from 0.3 s ago".
    pub picture_age: &'static str,
    pub seconds_ago: &'static str,
    /// The integrator's page: live detections, tracks and the zone editor.
    pub camera_setup: &'static str,
    pub draw_zone: &'static str,
    pub draw_line: &'static str,
    pub name: &'static str,
    pub undo: &'static str,
    pub clear: &'static str,
    pub editor_help: &'static str,
    pub zones_in_config: &'static str,
    pub since: &'static str,
    pub until: &'static str,
    pub tag: &'static str,
    pub any: &'static str,
    pub find: &'static str,
    pub next_page: &'static str,
    /// The switch to the other language.
    pub language: &'static str,
    /// Site plans, their pins' legend, and the page when none is configured.
    pub site_plan: &'static str,
    pub plan_alarm: &'static str,
    pub plan_taken: &'static str,
    pub plan_down: &'static str,
    pub no_plans: &'static str,
    pub previous_page: &'static str,
    /// A report's page: `{first}`, `{last}`, `{rows}`.
    pub report_rows: &'static str,
    pub results: &'static str,
    pub clip: &'static str,
    pub no_clip: &'static str,
    /// Under the recording of an alert still open.
    pub clip_so_far: &'static str,
    pub snapshot: &'static str,
    pub annotated: &'static str,
    pub timeline: &'static str,
    pub tags: &'static str,
    pub add: &'static str,
    pub remove: &'static str,
    pub hold: &'static str,
    pub held_by: &'static str,
    pub release: &'static str,
    pub reason: &'static str,
    pub export: &'static str,
    pub export_reason: &'static str,
    pub verification: &'static str,
    pub verified: &'static str,
    pub not_verified: &'static str,
    pub custody: &'static str,
    /// The evidence files a down node holds, as the compound's index lists them.
    pub files_elsewhere: &'static str,
    pub file_deleted: &'static str,
    pub when: &'static str,
    pub who: &'static str,
    pub what: &'static str,
    pub forbidden: &'static str,
    pub not_found: &'static str,
    pub back: &'static str,
    pub event_new: &'static str,
    pub event_update: &'static str,
    /// Nobody took the alert in time: it went to the supervisor.
    pub escalated: &'static str,
    /// The wall's filters, list mode, several at once and keys.
    pub not_taken: &'static str,
    pub in_progress: &'static str,
    pub dense: &'static str,
    /// The camera panel's filter: by name or id.
    pub camera_filter: &'static str,
    pub take_selected: &'static str,
    pub select: &'static str,
    pub shortcuts: &'static str,
    pub event_end: &'static str,
    pub offline: &'static str,
    /// Heads the wall's card for a camera that is reconnecting or failed.
    pub camera_down: &'static str,
    pub session_ended: &'static str,
    pub refused_role: &'static str,
    pub refused_csrf: &'static str,
    pub back_to_wall: &'static str,
    pub role_operator: &'static str,
    pub role_police: &'static str,
    pub role_admin: &'static str,
    pub session_ended_hint: &'static str,
    /// Detector labels as the control room names them; others show as is.
    pub labels: &'static [(&'static str, &'static str)],
    /// Recipients with a conventional name (`[alerts.routes]`); others show as is.
    pub recipient_names: &'static [(&'static str, &'static str)],
    /// Why a camera is down, by a phrase vigil's or GStreamer's reason
    /// contains; a reason matching none is shown as given.
    pub reasons: &'static [(&'static str, &'static str)],
    /// Access-log actions as stored (`view`, `file`, …) and details vigil writes.
    pub access_words: &'static [(&'static str, &'static str)],
    /// Evidence-check failures (`store/verify.rs`, `store/manifest.rs`), by a
    /// phrase they contain; the last entry (empty phrase) catches the rest.
    /// Empty: shown as given.
    pub verify_failures: &'static [(&'static str, &'static str)],
    /// An export in the access log, before its hash: `{files}`, `{reason}`.
    pub export_detail: &'static str,
    /// Alert summaries, from parts: `{label}`, `{track}`, `{place}`, `{score}`.
    pub summary_loitering: &'static str,
    pub summary_cart_crossed: &'static str,
    pub summary_cart_standing: &'static str,
    pub summary_fire_smoke: &'static str,
}

pub const ZH_CN: Text = Text {
    title: "vigil 监控中心",
    login: "登录",
    user: "用户名",
    password: "密码",
    login_failed: "用户名或密码错误",
    login_throttled: "失败次数过多，请稍后再试",
    minutes: "分钟",
    logout: "退出",
    wall: "告警墙",
    search: "查询",
    report: "值班报告",
    from: "从",
    to: "到",
    show: "生成",
    alerts_count: "告警数",
    unresolved: "未处理完毕",
    time_to_take: "接警用时",
    time_to_resolve: "处置用时",
    median_longest: "中位 / 最长",
    taken_by: "接警人",
    no_outcome: "未记录",
    cameras: "摄像头",
    no_alerts: "暂无未处理告警",
    no_alerts_on_this_node: "本节点暂无未处理告警；其他节点的未处理警报见右侧列表",
    no_alerts_console_only: "本机不运行摄像头：各节点的未处理警报见右侧列表，可在此接警和处理",
    fire_smoke: "烟火",
    battery_cart: "电动车进楼",
    loitering: "人员逗留",
    critical: "紧急",
    high: "高",
    warning: "警告",
    camera: "摄像头",
    kind: "类型",
    zone: "区域",
    line: "入口线",
    started: "开始",
    ended: "结束",
    duration: "持续",
    recipients: "通知",
    instruction: "处置：",
    resolved_recently: "最近处理",
    resolved_at: "处理时间",
    handled_by: "处理人",
    none_resolved: "过去 24 小时没有处理完毕的告警。",
    state: "状态",
    open: "进行中",
    interrupted: "已中断",
    take: "接警",
    resolve: "处理完毕",
    in_progress_by: "处理中",
    resolved_by: "已处理",
    note: "备注",
    outcome: "处置结果",
    on_site: "现场处置",
    false_alarm: "误报",
    duplicate: "重复告警",
    test: "测试",
    details: "详情",
    sound_on: "声音: 开",
    sound_off: "声音: 关",
    sound_blocked: "点击开启告警声音",
    new_alerts: "条新告警 ↑",
    up: "在线",
    reconnecting: "重连中",
    failed: "故障",
    stopped: "已停止",
    starting: "启动中",
    on_node: "运行于节点",
    nodes: "节点",
    this_node: "本节点",
    node_down: "离线",
    node_last_heard: "最后在线：{t}前",
    elsewhere_unreachable: "证据在节点 {node} 上，该节点无法连接",
    camera_elsewhere_unreachable: "该摄像头由节点 {node} 运行，该节点无法连接",
    ack_queued: "节点 {node} 无法连接：已记录，该节点恢复后写入其存储",
    elsewhere_no_secret: "证据在节点 {node} 上；本系统未配置 [compound] secret_file，控制台之间无法调取",
    compound_db_down: "小区数据库（PostgreSQL）无应答：暂时无法查到其他节点的警报",
    fps: "帧/秒",
    no_picture: "无画面",
    live_video: "实况",
    picture_age: "画面延迟",
    seconds_ago: "秒",
    camera_setup: "布点调试",
    draw_zone: "画区域",
    draw_line: "画警戒线",
    name: "名称",
    undo: "撤销",
    clear: "清除",
    editor_help: "在画面上点击添加点。区域至少 3 个点；警戒线依次点击起点、终点和楼内一侧的任一点。下面的 TOML 可直接粘贴到该摄像头的配置中，用 vigil check 检查。",
    zones_in_config: "配置中的区域和警戒线",
    since: "起",
    until: "止",
    tag: "标签",
    any: "全部",
    find: "查询",
    next_page: "下一页",
    language: "界面语言",
    site_plan: "平面图",
    plan_alarm: "有未接警的告警",
    plan_taken: "告警处理中",
    plan_down: "摄像头离线",
    no_plans: "尚未配置平面图：在配置的 [[console.plans]] 中加入楼栋或楼层的图片和摄像头位置。",
    previous_page: "上一页",
    report_rows: "第 {first}–{last} 条，共 {rows} 条",
    results: "条结果",
    clip: "录像",
    no_clip: "录像尚未生成",
    clip_so_far: "告警仍在进行：此为截至打开页面时的录像，告警结束后换成完整录像（刷新页面可看到更新的部分）",
    snapshot: "原始截图",
    annotated: "标注截图",
    timeline: "事件时间线",
    tags: "标签",
    add: "添加",
    remove: "移除",
    hold: "证据保全",
    held_by: "已保全",
    release: "解除保全",
    reason: "原因",
    export: "导出证据包",
    export_reason: "案号或导出事由（必填）",
    verification: "证据校验",
    verified: "校验通过",
    not_verified: "校验失败",
    custody: "访问记录（证据保管链）",
    files_elsewhere: "证据文件（保存在节点 {node}，SHA-256 以该节点的签名清单为准）",
    file_deleted: "已按保留期限删除",
    when: "时间",
    who: "用户",
    what: "操作",
    forbidden: "无权访问",
    not_found: "未找到",
    back: "返回",
    event_new: "告警",
    event_update: "更新",
    escalated: "超时无人接警，已上报主管",
    not_taken: "未接警",
    in_progress: "处理中",
    dense: "列表模式",
    camera_filter: "按名称筛选摄像头",
    take_selected: "接警所选",
    select: "选择",
    shortcuts: "快捷键：J / K 上下切换 · A 接警 · X 选中 · O 打开详情",
    event_end: "结束",
    offline: "连接中断，正在重连…",
    camera_down: "摄像头离线：此画面无人看守",
    session_ended: "登录已失效，告警墙已停止更新",
    refused_role: "您的角色无权进行此操作",
    refused_csrf: "请求未通过校验（页面可能已过期），请返回后重试",
    back_to_wall: "返回告警墙",
    role_operator: "值班员",
    role_police: "民警",
    role_admin: "管理员",
    session_ended_hint: "请重新登录。登录后，离开期间的告警会全部显示。",
    labels: &[
        ("person", "人员"),
        ("bicycle", "自行车"),
        ("motorcycle", "摩托车"),
        ("battery_cart", "电动车"),
        ("fire", "明火"),
        ("smoke", "烟雾"),
    ],
    recipient_names: &[
        ("patrol", "巡逻队"),
        ("police", "派出所"),
        ("property", "物业"),
        ("supervisor", "值班主管"),
        ("fire_brigade", "消防"),
    ],
    reasons: &[
        ("end of file", "文件播放完毕"),
        ("stalled", "长时间无画面，正在重连"),
        ("crashed vigil's decoder", "视频流导致解码器崩溃，暂停接入"),
        ("Unauthorized", "摄像头拒绝登录（用户名或密码错误）"),
        ("Not Found", "摄像头上没有该视频流（路径错误）"),
        ("not found", "找不到视频源"),
        ("Could not open resource", "无法连接摄像头"),
        ("Could not connect", "无法连接摄像头"),
        ("refused", "无法连接摄像头"),
        ("timed out", "连接摄像头超时"),
        ("timeout", "连接摄像头超时"),
        ("is missing", "缺少解码组件（GStreamer 插件）"),
        ("stream error", "视频流中断"),
        ("", "摄像头故障"),
    ],
    access_words: &[
        ("view", "查看"),
        ("alert page", "告警页面"),
        ("file", "调取证据文件"),
        ("tag add", "添加标签"),
        ("tag remove", "删除标签"),
        ("hold", "保全"),
        ("release", "解除保全"),
        ("export", "导出"),
    ],
    export_detail: "证据包 {files} 个文件；事由：{reason}；",
    verify_failures: &[
        ("content changed", "文件内容被改动（与签名清单不符）"),
        ("file is missing", "文件缺失，且没有按保存期限删除的记录"),
        ("database was altered", "数据库中的记录被改动"),
        ("entry was deleted", "签名清单中的条目被删除"),
        ("marked deleted", "标记为删除，但签名清单中没有删除记录"),
        ("cannot read", "文件无法读取"),
        (
            "unknown to the database",
            "数据库不认识该文件：数据库被删除或替换",
        ),
        (
            "signature does not verify",
            "签名无效：条目被改动，或密钥不符",
        ),
        ("reordered or duplicated", "签名清单条目顺序被打乱或重复"),
        ("were deleted", "签名清单中的条目被删除"),
        ("an entry was altered", "签名清单中的条目被改动"),
        ("", "证据校验失败"),
    ],
    summary_loitering: "{label} #{track} 在区域「{place}」逗留超时",
    summary_cart_crossed: "{label} #{track} 经「{place}」进入楼内",
    summary_cart_standing: "{label} #{track} 停留在「{place}」",
    summary_fire_smoke: "确认{label}，最高置信度 {score}",
};

pub const EN: Text = Text {
    title: "vigil control room",
    login: "Log in",
    user: "User",
    password: "Password",
    login_failed: "Wrong user name or password",
    login_throttled: "Too many failed attempts; try again later",
    minutes: "min",
    logout: "Log out",
    wall: "Alerts",
    search: "Search",
    report: "Shift report",
    from: "From",
    to: "To",
    show: "Show",
    alerts_count: "Alerts",
    unresolved: "Not resolved",
    time_to_take: "Time to take",
    time_to_resolve: "Time to resolve",
    median_longest: "median / longest",
    taken_by: "Taken by",
    no_outcome: "not recorded",
    cameras: "Cameras",
    no_alerts: "No open alerts",
    no_alerts_on_this_node: "No unresolved alerts on this node; other nodes' are listed on the right",
    no_alerts_console_only: "This console runs no camera: the nodes' unresolved alerts are listed on the right, to take and resolve here",
    fire_smoke: "Fire / smoke",
    battery_cart: "Battery cart entering",
    loitering: "Loitering",
    critical: "critical",
    high: "high",
    warning: "warning",
    camera: "Camera",
    kind: "Kind",
    zone: "Zone",
    line: "Line",
    started: "Started",
    ended: "Ended",
    duration: "Duration",
    recipients: "Notified",
    instruction: "Do:",
    resolved_recently: "Resolved",
    resolved_at: "Resolved at",
    handled_by: "By",
    none_resolved: "Nothing was resolved in the last 24 hours.",
    state: "State",
    open: "open",
    interrupted: "interrupted",
    take: "Take",
    resolve: "Resolve",
    in_progress_by: "In progress",
    resolved_by: "Resolved",
    note: "Note",
    outcome: "Outcome",
    on_site: "Handled on site",
    false_alarm: "False alarm",
    duplicate: "Duplicate",
    test: "Test",
    details: "Details",
    sound_on: "Sound: on",
    sound_off: "Sound: off",
    sound_blocked: "Click to allow alarm sound",
    new_alerts: "new alerts ↑",
    up: "up",
    reconnecting: "reconnecting",
    failed: "failed",
    stopped: "stopped",
    starting: "starting",
    on_node: "on node",
    nodes: "Nodes",
    this_node: "this node",
    node_down: "down",
    node_last_heard: "last heard {t} ago",
    elsewhere_unreachable: "evidence on node {node}, unreachable",
    camera_elsewhere_unreachable: "this camera runs on node {node}, unreachable",
    ack_queued: "node {node} is unreachable: recorded, and written to its store when it is back",
    elsewhere_no_secret: "evidence on node {node}; this compound has no [compound] secret_file, so consoles cannot fetch from each other",
    compound_db_down: "the compound's PostgreSQL does not answer: other nodes' alerts cannot be looked up",
    fps: "fps",
    no_picture: "no picture",
    live_video: "Live",
    picture_age: "picture delay",
    seconds_ago: "s",
    camera_setup: "Camera setup",
    draw_zone: "Draw a zone",
    draw_line: "Draw a line",
    name: "Name",
    undo: "Undo",
    clear: "Clear",
    editor_help: "Click the picture to add points. A zone needs at least 3; a line takes its start, its end, then any point on the building side. Paste the TOML below into this camera's config and run vigil check.",
    zones_in_config: "Zones and lines in the config",
    since: "From",
    until: "To",
    tag: "Tag",
    any: "any",
    find: "Search",
    next_page: "Next page",
    language: "Language of the console",
    site_plan: "Site plan",
    plan_alarm: "alert nobody has taken",
    plan_taken: "alert in progress",
    plan_down: "camera down",
    no_plans: "No site plan is configured: add a building's or a floor's picture and its cameras' places under [[console.plans]] in the config.",
    previous_page: "Previous page",
    report_rows: "rows {first}–{last} of {rows}",
    results: "results",
    clip: "Clip",
    no_clip: "The clip is not ready yet",
    clip_so_far: "The alert is still open: this is its recording up to when the page was opened; the whole clip replaces it at the end (reload for more)",
    snapshot: "Snapshot",
    annotated: "Annotated",
    timeline: "Timeline",
    tags: "Tags",
    add: "Add",
    remove: "Remove",
    hold: "Legal hold",
    held_by: "Held",
    release: "Release hold",
    reason: "Reason",
    export: "Export evidence bundle",
    export_reason: "Case number or reason (required)",
    verification: "Evidence check",
    verified: "verified",
    not_verified: "FAILED",
    custody: "Access log (chain of custody)",
    files_elsewhere: "Evidence files (kept on node {node}; its signed manifest vouches for the SHA-256)",
    file_deleted: "deleted by retention",
    when: "When",
    who: "Who",
    what: "What",
    forbidden: "Forbidden",
    not_found: "Not found",
    back: "Back",
    event_new: "alert",
    event_update: "update",
    escalated: "not taken in time: escalated to the supervisor",
    not_taken: "not taken",
    in_progress: "in progress",
    dense: "List",
    camera_filter: "Filter cameras by name",
    take_selected: "Take selected",
    select: "Select",
    shortcuts: "Keys: J / K next and previous · A take · X select · O open",
    event_end: "end",
    offline: "Connection lost, reconnecting…",
    camera_down: "Camera down: nobody is watching this view",
    session_ended: "Your login has ended: the wall is no longer updating",
    refused_role: "Your role does not allow this",
    refused_csrf: "The request could not be checked (the page may be stale); go back and try again",
    back_to_wall: "Back to the alert wall",
    role_operator: "operator",
    role_police: "police",
    role_admin: "admin",
    session_ended_hint: "Log in again. Every alert raised meanwhile will be shown.",
    labels: &[("battery_cart", "battery cart")],
    recipient_names: &[],
    reasons: &[],
    access_words: &[],
    export_detail: "bundle of {files} file(s); {reason}; ",
    verify_failures: &[],
    summary_loitering: "{label} #{track} stayed too long in zone {place}",
    summary_cart_crossed: "{label} #{track} crossed {place} inward",
    summary_cart_standing: "{label} #{track} standing in {place}",
    summary_fire_smoke: "{label} confirmed, peak score {score}",
};

impl Text {
    /// A detector label in this language.
    pub fn label<'a>(&self, label: &'a str) -> &'a str {
        self.labels
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, name)| *name)
            .unwrap_or(label)
    }

    /// An alert's one line, built from its stored parts so it reads in this
    /// language; the rule's own English line for a kind without a template.
    pub fn summary(&self, a: &crate::store::AlertRow) -> String {
        let template = match (a.kind.as_str(), &a.line, &a.zone) {
            ("loitering", _, Some(_)) => self.summary_loitering,
            ("battery_cart", Some(_), _) => self.summary_cart_crossed,
            ("battery_cart", None, Some(_)) => self.summary_cart_standing,
            ("fire_smoke", _, _) => self.summary_fire_smoke,
            _ => return a.summary.clone(),
        };
        let place = a.line.as_deref().or(a.zone.as_deref()).unwrap_or_default();
        let track = a.track_id.map(|t| t.to_string()).unwrap_or_default();
        template
            .replace("{label}", self.label(&a.label))
            .replace("{track}", &track)
            .replace("{place}", place)
            .replace("{score}", &format!("{:.2}", a.score))
    }

    /// When a down node was last heard.
    pub fn node_down_since(&self, seconds: u64) -> String {
        let (n, unit) = match seconds {
            s if s < 120 => (s, self.seconds_ago),
            s => (s / 60, self.minutes),
        };
        // Chinese units follow the number directly; English ones after a space.
        let gap = if unit.is_ascii() { " " } else { "" };
        self.node_last_heard
            .replace("{t}", &format!("{n}{gap}{unit}"))
    }

    /// A recipient id as the control room says it.
    pub fn recipient<'a>(&self, id: &'a str) -> &'a str {
        self.recipient_names
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, name)| *name)
            .unwrap_or(id)
    }

    /// Why a camera is down, in this language: the first phrase of
    /// [`Text::reasons`] the raw reason contains (the raw one stays in the
    /// page's tooltip and the log), or the raw reason.
    pub fn reason<'a>(&self, raw: &'a str) -> &'a str {
        self.reasons
            .iter()
            .find(|(phrase, _)| raw.contains(phrase))
            .map(|(_, said)| *said)
            .unwrap_or(raw)
    }

    /// An access-log action or detail as stored, in this language.
    pub fn access_word<'a>(&self, word: &'a str) -> &'a str {
        self.access_words
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, said)| *said)
            .unwrap_or(word)
    }

    /// An evidence-check failure in this language, and the file or manifest
    /// line it is about (shown as an id); the English line as given when
    /// this language has no table.
    pub fn verify_failure<'a>(&self, raw: &'a str) -> (&'a str, Option<&'a str>) {
        let Some((_, said)) = self
            .verify_failures
            .iter()
            .find(|(phrase, _)| raw.contains(phrase))
        else {
            return (raw, None);
        };
        let subject = raw
            .split_once(" (")
            .or_else(|| raw.split_once(": "))
            .map(|(subject, _)| subject);
        (said, subject)
    }

    /// An access-log detail in this language, and the id it names (an
    /// evidence path, a bundle's hash) to show as one: an export's stored line
    /// (`bundle of N file(s), sha256 HEX; REASON`, as the CLI and the console
    /// write it) is rebuilt from its parts; a fetched file is its path; other
    /// details as [`Text::access_word`] says.
    pub fn access_detail(&self, action: &str, detail: &str) -> (String, Option<String>) {
        if action == "file" {
            return (String::new(), Some(detail.to_string()));
        }
        let parts = detail
            .strip_prefix("bundle of ")
            .and_then(|rest| rest.split_once(" file(s), sha256 "))
            .and_then(|(files, rest)| {
                let (sha, reason) = rest.split_once("; ").unwrap_or((rest, ""));
                Some((files.parse::<u64>().ok()?, sha, reason))
            });
        match parts {
            Some((files, sha, reason)) => (
                self.export_detail
                    .replace("{files}", &files.to_string())
                    .replace("{reason}", reason),
                Some(format!("sha256 {sha}")),
            ),
            None => (self.access_word(detail).to_string(), None),
        }
    }

    pub fn outcome_label(&self, o: crate::store::Outcome) -> &'static str {
        use crate::store::Outcome;
        match o {
            Outcome::OnSite => self.on_site,
            Outcome::FalseAlarm => self.false_alarm,
            Outcome::Duplicate => self.duplicate,
            Outcome::Test => self.test,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AlertRow;

    fn alert(kind: &str, label: &str, zone: Option<&str>, line: Option<&str>) -> AlertRow {
        AlertRow {
            kind: kind.into(),
            label: label.into(),
            zone: zone.map(Into::into),
            line: line.map(Into::into),
            track_id: Some(6),
            score: 0.734,
            summary: "the rule's English line".into(),
            ..AlertRow::default()
        }
    }

    /// The zh-CN console shows no English summary: each kind's line is built
    /// from the alert's parts, with the control room's names for labels.
    #[test]
    fn summaries_are_built_from_parts_in_the_console_language() {
        let zh = Language::ZhCn.text();
        let cases = [
            (
                alert("loitering", "person", Some("广场"), None),
                "人员 #6 在区域「广场」逗留超时",
            ),
            (
                alert("battery_cart", "battery_cart", None, Some("3号门")),
                "电动车 #6 经「3号门」进入楼内",
            ),
            (
                alert("battery_cart", "bicycle", Some("电梯"), None),
                "自行车 #6 停留在「电梯」",
            ),
            (
                alert("fire_smoke", "smoke", None, None),
                "确认烟雾，最高置信度 0.73",
            ),
        ];
        for (a, want) in &cases {
            assert_eq!(zh.summary(a), *want);
        }
        let en = Language::En.text();
        assert_eq!(
            en.summary(&cases[1].0),
            "battery cart #6 crossed 3号门 inward"
        );
        assert_eq!(zh.reason("end of file"), "文件播放完毕");
        assert_eq!(
            zh.reason("source rtsp://x: Could not open resource for reading and writing."),
            "无法连接摄像头"
        );
        assert_eq!(zh.reason("something new"), "摄像头故障");
        assert_eq!(en.reason("end of file"), "end of file");
        assert_eq!(zh.recipient("patrol"), "巡逻队");
        assert_eq!(
            zh.access_detail(
                "export",
                "bundle of 3 file(s), sha256 ab12; 沪公浦刑2026-117号"
            ),
            (
                "证据包 3 个文件；事由：沪公浦刑2026-117号；".to_string(),
                Some("sha256 ab12".to_string())
            )
        );
        assert_eq!(
            zh.access_detail("view", "alert page"),
            ("告警页面".to_string(), None)
        );
        assert_eq!(
            zh.verify_failure("evidence/a/x.jpg (alert a-1): content changed: sha256 ab (3 bytes), manifest entry 4 says cd (5 bytes)"),
            ("文件内容被改动（与签名清单不符）", Some("evidence/a/x.jpg"))
        );
        let line = "manifest line 3: entry 4 does not chain to entry 2 (prev hash differs): an entry was altered";
        assert_eq!(en.verify_failure(line), (line, None));
        assert_eq!(
            zh.access_detail("file", "evidence/a/b.jpg"),
            (String::new(), Some("evidence/a/b.jpg".to_string()))
        );
        assert_eq!(zh.recipient("gate-guard"), "gate-guard");
        // A kind without a template keeps the rule's own line.
        assert_eq!(
            zh.summary(&alert("other", "x", None, None)),
            "the rule's English line"
        );
    }
}

//! What a node tells any gRPC tool without credentials: health (`grpc.health.v1`) and server reflection (v1 and
//! v1alpha), and what the advertised wire contract promises, e.g. that the audit trail can only be read.

use ecovol_tests::{NodeSpec, TestNode};
use prost::Message as _;
use prost_types::{FileDescriptorProto, ServiceDescriptorProto};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::{v1, v1alpha};

/// Services the brief of this node names; the contract may hold more (see `contract_services`).
const NAMED_SERVICES: [&str; 6] = [
    "ecovol.v1.AccountService",
    "ecovol.v1.AuditService",
    "ecovol.v1.NodeService",
    "ecovol.v1.SiteService",
    "ecovol.v1.TeamService",
    "ecovol.v1.VolunteerService",
];

/// Every service of the wire contract (`ecovol_proto::FILE_DESCRIPTOR_SET`), by full name, sorted; checked to
/// hold the named ones, so a test over them cannot pass by looking at nothing.
/// The service of the federation port, which the office port does not serve (docs/FEDERATION.md).
const FEDERATION_SERVICE: &str = "ecovol.v1.FederationService";

fn contract_services() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(ecovol_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut names: Vec<String> = set
        .file
        .iter()
        .filter(|file| file.package().starts_with("ecovol."))
        .flat_map(|file| file.service.iter().map(move |service| format!("{}.{}", file.package(), service.name())))
        .collect();
    names.sort();
    for named in NAMED_SERVICES {
        assert!(names.iter().any(|name| name == named), "{named} missing from the contract {names:?}");
    }
    names
}

async fn node() -> TestNode {
    TestNode::start(NodeSpec::county("330106")).await.expect("node starts")
}

/// One reflection request on the v1 protocol, and its one answer.
async fn reflect_v1(
    channel: Channel,
    request: v1::server_reflection_request::MessageRequest,
) -> v1::server_reflection_response::MessageResponse {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1::ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut answers =
        client.server_reflection_info(futures::stream::iter([request])).await.expect("reflection call").into_inner();
    let answer = answers.message().await.expect("reflection answer").expect("one answer");
    assert!(answers.message().await.expect("end of answers").is_none(), "one answer per request");
    answer.message_response.expect("a response")
}

/// One reflection request on the v1alpha protocol (older tools such as some grpcurl releases), and its answer.
async fn reflect_v1alpha(
    channel: Channel,
    request: v1alpha::server_reflection_request::MessageRequest,
) -> v1alpha::server_reflection_response::MessageResponse {
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut answers =
        client.server_reflection_info(futures::stream::iter([request])).await.expect("reflection call").into_inner();
    let answer = answers.message().await.expect("reflection answer").expect("one answer");
    assert!(answers.message().await.expect("end of answers").is_none(), "one answer per request");
    answer.message_response.expect("a response")
}

/// The files a v1 `file_containing_symbol` answer carries (the symbol's file and what it imports).
async fn files_containing(channel: Channel, symbol: &str) -> Vec<FileDescriptorProto> {
    let request = v1::server_reflection_request::MessageRequest::FileContainingSymbol(symbol.into());
    match reflect_v1(channel, request).await {
        v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).expect("a FileDescriptorProto"))
            .collect(),
        other => panic!("not a file descriptor response: {other:?}"),
    }
}

/// The descriptor of service `package.Name` among `files`.
fn service<'a>(files: &'a [FileDescriptorProto], full_name: &str) -> &'a ServiceDescriptorProto {
    let (package, name) = full_name.rsplit_once('.').expect("a full name");
    files
        .iter()
        .filter(|file| file.package() == package)
        .flat_map(|file| &file.service)
        .find(|service| service.name() == name)
        .unwrap_or_else(|| panic!("{full_name} not among {:?}", files.iter().map(|f| f.name()).collect::<Vec<_>>()))
}

#[tokio::test]
async fn health_says_serving_for_the_node_and_every_service_without_credentials() {
    let node = node().await;
    let mut health = HealthClient::new(node.channel.clone());
    let check = |service: &str| {
        let mut health = health.clone();
        let request = HealthCheckRequest { service: service.into() };
        async move { health.check(request).await }
    };
    assert_eq!(check("").await.unwrap().into_inner().status, ServingStatus::Serving as i32);
    for service in contract_services() {
        if service == FEDERATION_SERVICE {
            // Served on the federation port only (mutual TLS, node certificates): not here.
            assert_eq!(check(&service).await.unwrap_err().code(), Code::NotFound, "{service} on the office port");
            continue;
        }
        let status = check(&service).await.unwrap_or_else(|error| panic!("{service}: {error}")).into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    let unknown = check("ecovol.v1.NoSuchService").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    // Watch starts with the current status too.
    let mut watch =
        health.watch(HealthCheckRequest { service: "ecovol.v1.VolunteerService".into() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let node = node().await;
    let listed_v1 = match reflect_v1(
        node.channel.clone(),
        v1::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await
    {
        v1::server_reflection_response::MessageResponse::ListServicesResponse(list) => {
            let mut names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
            names.sort();
            names
        }
        other => panic!("not a service list: {other:?}"),
    };
    let listed_v1alpha = match reflect_v1alpha(
        node.channel.clone(),
        v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await
    {
        v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list) => {
            let mut names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
            names.sort();
            names
        }
        other => panic!("not a service list: {other:?}"),
    };
    for listed in [&listed_v1, &listed_v1alpha] {
        for service in contract_services().iter().map(String::as_str).chain(["grpc.health.v1.Health"]) {
            assert!(listed.iter().any(|name| name == service), "{service} missing from {listed:?}");
        }
        let ecovol: Vec<&str> = listed.iter().map(String::as_str).filter(|name| name.starts_with("ecovol.")).collect();
        assert_eq!(ecovol, contract_services(), "the contract's services, no more");
    }
}

#[tokio::test]
async fn reflection_finds_the_file_declaring_a_symbol_on_both_protocols() {
    let node = node().await;
    let files = files_containing(node.channel.clone(), "ecovol.v1.VolunteerService").await;
    let declaring = files.iter().find(|file| file.name() == "ecovol/v1/volunteer.proto").expect("volunteer.proto");
    assert_eq!(declaring.package(), "ecovol.v1");
    let volunteers = service(&files, "ecovol.v1.VolunteerService");
    let methods: Vec<&str> = volunteers.method.iter().map(|method| method.name()).collect();
    for expected in ["RegisterVolunteer", "GetVolunteer", "SearchVolunteers", "RevealIdentityNumber"] {
        assert!(methods.contains(&expected), "{expected} missing from {methods:?}");
    }
    let register = volunteers.method.iter().find(|method| method.name() == "RegisterVolunteer").unwrap();
    assert_eq!(register.input_type(), ".ecovol.v1.RegisterVolunteerRequest");
    // A method name finds the same file.
    let by_method = files_containing(node.channel.clone(), "ecovol.v1.TeamService.AddTeamMember").await;
    assert!(by_method.iter().any(|file| file.name() == "ecovol/v1/team.proto"));

    let alpha = reflect_v1alpha(
        node.channel.clone(),
        v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol("ecovol.v1.SiteService".into()),
    )
    .await;
    let v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(alpha) = alpha else {
        panic!("not a file descriptor response: {alpha:?}")
    };
    let alpha: Vec<FileDescriptorProto> = alpha
        .file_descriptor_proto
        .iter()
        .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    assert!(alpha.iter().any(|file| file.name() == "ecovol/v1/site.proto"));

    // An unknown symbol ends the answer stream with NotFound.
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(node.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "ecovol.v1.NoSuchThing".into(),
        )),
    };
    let mut answers = client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let unknown = answers.message().await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("ecovol.v1.NoSuchThing"), "{}", unknown.message());
}

#[tokio::test]
async fn the_audit_service_offers_reading_only() {
    let node = node().await;
    let files = files_containing(node.channel.clone(), "ecovol.v1.AuditService").await;
    let audit = service(&files, "ecovol.v1.AuditService");
    // MLPS level 3: no call edits or deletes audit entries.
    assert_eq!(audit.method.len(), 1, "{:?}", audit.method.iter().map(|m| m.name()).collect::<Vec<_>>());
    let list = &audit.method[0];
    assert_eq!(list.name(), "ListAuditEntries");
    assert_eq!(list.input_type(), ".ecovol.v1.ListAuditEntriesRequest");
    assert_eq!(list.output_type(), ".ecovol.v1.ListAuditEntriesResponse");
    assert!(!list.client_streaming() && !list.server_streaming());
    // Nor does any other service of the contract touch the trail.
    for name in contract_services() {
        let files = files_containing(node.channel.clone(), &name).await;
        for method in &service(&files, &name).method {
            let touches_audit = method.name().contains("Audit");
            assert!(
                !touches_audit || method.name() == "ListAuditEntries",
                "{name}.{} touches the audit trail",
                method.name()
            );
        }
    }
}
